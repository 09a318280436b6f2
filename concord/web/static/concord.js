// Concord's only script. Pages work without it; it makes HTMX errors visible.
document.addEventListener("htmx:responseError", function (event) {
  var box = document.getElementById("htmx-error");
  if (!box) return;
  var status = event.detail.xhr.status;
  box.hidden = false;
  box.querySelector("[data-status]").textContent = String(status);
  box.focus();
});
document.addEventListener("htmx:sendError", function () {
  var box = document.getElementById("htmx-error");
  if (box) { box.hidden = false; box.focus(); }
});
