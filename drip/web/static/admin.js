/* Forms that ask before they act (suppress, erase): the question is in data-confirm, so the
   page needs no inline script and the Content-Security-Policy can forbid it. */
document.addEventListener("submit", function (event) {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

/* A bulk action's progress page goes on by itself; without script its Continue button does. */
document.addEventListener("DOMContentLoaded", function () {
  const form = document.querySelector("form[data-continue]");
  if (form instanceof HTMLFormElement) {
    form.requestSubmit();
  }
});
