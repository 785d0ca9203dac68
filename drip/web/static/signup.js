/* The sign-up page: fill the hidden time zone from the browser, and move focus to the
   error message when there is one. A file, not inline, so the Content-Security-Policy can
   forbid inline script. (The embedded form pasted into a blog carries its own copy of the
   time zone line: it runs on the blog's page, not ours.) */
(function () {
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) {
      document.querySelectorAll("input[data-drip-timezone]").forEach(function (input) {
        if (!input.value) input.value = zone;
      });
    }
  } catch (e) { /* an old browser: the sequence's time zone is used */ }
  const error = document.querySelector("[data-drip-focus]");
  if (error) error.focus();
})();
