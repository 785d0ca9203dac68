/* Forms that ask before they act (suppress, erase): the question is in data-confirm, so the
   page needs no inline script and the Content-Security-Policy can forbid it. */
document.addEventListener("submit", function (event) {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

/* The course editor: the preview follows the form as the author types. The unsaved form is
   posted (with its CSRF token) to the editor's preview URL, which renders it with the
   Renderer that sends; the answer fills the sandboxed frames and the problem lists. Without
   JavaScript the form's Preview button does the same through a page load. */
(function () {
  const form = document.querySelector("form[data-preview-url]");
  if (!form) {
    return;
  }
  const body = form.querySelector("#body");
  const status = document.querySelector("[data-preview-status]");
  const cursor = form.querySelector("[data-cursor]");
  let timer = 0;
  let latest = 0;

  function problemItem(problem) {
    const item = document.createElement("li");
    item.className = problem.severity;
    if (problem.field === "body") {
      const link = document.createElement("a");
      link.href = "#body";
      link.dataset.line = String(problem.line);
      link.textContent = "line " + problem.line;
      item.append(link, ": ");
    } else if (!problem.field) {
      const where = document.createElement("span");
      where.className = "mono";
      where.textContent = problem.where;
      item.append(where, ": ");
    }
    item.append(problem.message);
    return item;
  }

  function show(data) {
    document.querySelectorAll("[data-preview-frame]").forEach(function (frame) {
      frame.srcdoc = data.html;
    });
    const subject = document.querySelector("[data-preview-subject]");
    if (subject) {
      subject.textContent = data.subject;
    }
    const text = document.querySelector("[data-preview-text]");
    if (text) {
      text.textContent = data.text;
    }
    document.querySelectorAll("[data-problems]").forEach(function (list) {
      list.replaceChildren();
    });
    data.problems.forEach(function (problem) {
      const list = form.querySelector('[data-problems="' + problem.field + '"]') ||
        form.querySelector('[data-problems=""]');
      if (list) {
        list.append(problemItem(problem));
      }
    });
  }

  function refresh() {
    const request = ++latest;
    const data = new FormData(form);
    fetch(form.dataset.previewUrl, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (data) {
        if (request === latest) {
          show(data);
          form.dataset.previewed = String(request);
        }
      })
      .catch(function () {
        if (status) {
          status.textContent = "The preview could not be updated; press Preview to see it.";
        }
      });
  }

  form.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 400);
  });

  function lineAt(offset) {
    return body.value.slice(0, offset).split("\n").length;
  }

  function showCursor() {
    if (cursor && body) {
      cursor.textContent = "Line " + lineAt(body.selectionStart);
    }
  }

  /* "line 12: ..." puts the cursor on line 12 of the text and selects it. */
  form.addEventListener("click", function (event) {
    const link = event.target instanceof Element && event.target.closest("a[data-line]");
    if (!link || !body) {
      return;
    }
    event.preventDefault();
    const lines = body.value.split("\n");
    const line = Math.min(Number(link.dataset.line), lines.length);
    const start = lines.slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
    body.focus();
    body.setSelectionRange(start, start + lines[line - 1].length);
    const height = body.scrollHeight / Math.max(lines.length, 1);
    body.scrollTop = Math.max(0, (line - 3) * height);
    showCursor();
  });
  if (body) {
    ["keyup", "click", "focus"].forEach(function (name) {
      body.addEventListener(name, showCursor);
    });
  }
})();
/* A bulk action's progress page goes on by itself; without script its Continue button does. */
document.addEventListener("DOMContentLoaded", function () {
  const form = document.querySelector("form[data-continue]");
  if (form instanceof HTMLFormElement) {
    form.requestSubmit();
  }
});
/* The Segments page: each segment's count is asked for as the page opens, one at a time so
   a large database is not asked for all of them at once; without script each cell's link
   leads to the segment's page, which counts it. */
document.addEventListener("DOMContentLoaded", function () {
  const cells = Array.from(document.querySelectorAll("td[data-count]"));
  function next() {
    const cell = cells.shift();
    if (!cell) {
      return;
    }
    cell.setAttribute("aria-busy", "true");
    fetch(cell.dataset.count, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json();
      })
      .then(function (data) {
        cell.textContent = typeof data.count === "number" ? data.count.toLocaleString("en-US") : "–";
      })
      .catch(function () {
        cell.textContent = "–";
      })
      .finally(function () {
        cell.removeAttribute("aria-busy");
        next();
      });
  }
  next();
});
