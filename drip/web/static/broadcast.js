/* A broadcast's page: fill the schedule form's time zone from the browser, and while the
   broadcast goes out, poll its progress JSON and move the bars and numbers. A file, not
   inline script, so the Content-Security-Policy can forbid inline script. */
(function () {
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) {
      document.querySelectorAll("[data-drip-timezone]").forEach(function (input) {
        const known = !input.options || Array.from(input.options).some(function (o) { return o.value === zone; });
        if (known) input.value = zone;
      });
    }
  } catch (e) { /* an old browser: UTC stays */ }

  const box = document.querySelector("[data-progress-url]");
  if (!box || box.dataset.status !== "scheduled") return;

  function show(data) {
    const total = Math.max(data.total, 1);
    box.querySelectorAll("progress[data-key]").forEach(function (bar) {
      bar.max = total;
      bar.value = data[bar.dataset.key];
    });
    box.querySelectorAll("[data-count]").forEach(function (cell) {
      const key = cell.dataset.count;
      cell.textContent = key === "clicked" && !data.tracked ? "–" : String(data[key]);
    });
    const status = document.getElementById("broadcast-status");
    if (status && data.status !== "scheduled") {
      status.textContent = data.status;
      const cancel = document.getElementById("cancel-form");
      if (cancel) cancel.remove();  // nothing is left to cancel
    }
    return data.status === "scheduled";
  }

  function poll() {
    fetch(box.dataset.progressUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : Promise.reject(answer.status); })
      .then(function (data) { if (show(data)) window.setTimeout(poll, 2000); })
      .catch(function () { window.setTimeout(poll, 10000); });
  }
  window.setTimeout(poll, 2000);
})();
