/* Forms that ask before they act (suppress, erase): the question is in data-confirm, so the
   page needs no inline script and the Content-Security-Policy can forbid it. */
document.addEventListener("submit", function (event) {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
