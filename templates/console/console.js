// Progressive enhancement only: every page works without this file.
// Buttons marked data-print open the browser's print dialog.
document.addEventListener("click", function (event) {
  var target = event.target;
  if (target && target.hasAttribute && target.hasAttribute("data-print")) {
    event.preventDefault();
    window.print();
  }
});
document.querySelectorAll("[data-print]").forEach(function (button) { button.hidden = false; });
