/* Import in slices of rows so the progress bar shows rows actually imported, not bytes sent.
   Without this script the form posts the whole file at once. */
(function () {
  const form = document.getElementById("import-form");
  const SLICE = 100;
  form.addEventListener("submit", async function (event) {
    const file = form.elements.file.files[0];
    if (!file || !window.fetch) return;
    event.preventDefault();
    const lines = (await file.text()).replace(/^\uFEFF/, "").split(/\r?\n/);
    while (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
    const header = lines[0], rows = lines.slice(1);
    const bar = document.getElementById("import-bar"), status = document.getElementById("import-status");
    const result = document.getElementById("import-result");
    document.getElementById("import-progress").hidden = false;
    result.textContent = "";
    bar.max = Math.max(rows.length, 1); bar.value = 0;
    let added = 0; const errors = [];
    for (let start = 0; start < rows.length; start += SLICE) {
      const data = new FormData();
      data.set("csv", [header].concat(rows.slice(start, start + SLICE)).join("\n"));
      data.set("line_offset", String(start));
      for (const name of ["sequence", "source"]) data.set(name, form.elements[name].value);
      if (form.elements.confirmed.checked) data.set("confirmed", "yes");
      const answer = await fetch(form.dataset.chunkUrl, {method: "POST", body: data,
        headers: {"X-CSRFToken": form.elements.csrf_token.value}, credentials: "same-origin"});
      const body = await answer.json().catch(() => ({error: "the server answered " + answer.status}));
      if (!answer.ok) { status.textContent = "Stopped: " + body.error; return; }
      added += body.added; errors.push(...body.errors);
      bar.value = Math.min(start + SLICE, rows.length);
      status.textContent = bar.value + " of " + rows.length + " rows";
    }
    const summary = document.createElement("p");
    summary.className = "flash ok"; summary.setAttribute("role", "status");
    const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");
    summary.textContent = "Imported " + plural(added, "reader") + "; " +
      plural(errors.length, "row") + " skipped.";
    result.appendChild(summary);
    if (errors.length) {
      const list = document.createElement("ul"); list.className = "small";
      for (const [line, message] of errors) {
        const item = document.createElement("li"); item.textContent = "line " + line + ": " + message;
        list.appendChild(item);
      }
      result.appendChild(list);
    }
  });
})();
