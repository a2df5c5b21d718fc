// Small behaviours every page may use, from data attributes (no inline script or
// event handler: the Content-Security-Policy allows neither).
//   <form data-confirm="Revoke it?">  asks before submitting;
//   <button data-copy-target="id">    copies the text of #id to the clipboard.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy-target]");
    if (!button) return;
    const text = document.getElementById(button.dataset.copyTarget).textContent.trim();
    navigator.clipboard.writeText(text).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }, function () {
      button.textContent = "Select and copy";
    });
  });
})();
