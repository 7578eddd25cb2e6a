// The console's only script (the CSP forbids inline ones). Pages work without it; it
// adds keyboard help: "select all" boxes for bulk forms.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const all of document.querySelectorAll("input[data-select-all]")) {
    all.addEventListener("change", () => {
      const form = all.form;
      for (const box of form.querySelectorAll("input[name='" + all.dataset.selectAll + "']")) {
        box.checked = all.checked;
      }
    });
  }
});
