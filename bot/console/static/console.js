// The only script of the console: "select all" in the queue. Everything works without it.
document.querySelectorAll("[data-select-all]").forEach(function (box) {
  box.addEventListener("change", function () {
    document.querySelectorAll('input[name="case"]').forEach(function (c) { c.checked = box.checked; });
  });
});
