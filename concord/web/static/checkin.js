// On a phone, a check-in shows one question per screen with Back and Next. Without this
// script (or on a wide screen) every question is on one page; both send the same form.
(function () {
  "use strict";
  var narrow = window.matchMedia("(max-width: 40rem)");

  function setUp(form) {
    var steps = Array.prototype.slice.call(form.querySelectorAll("fieldset.question"));
    if (!steps.length) { return; }
    var back = form.querySelector("[data-step-back]");
    var next = form.querySelector("[data-step-next]");
    var submit = form.querySelector("[data-submit]");
    var status = form.querySelector(".step-status");
    var current = 0;
    // Start at the first unanswered question (or one with an error).
    for (var i = 0; i < steps.length; i++) {
      if (steps[i].classList.contains("has-error") || !steps[i].querySelector("input:checked")) {
        current = i; break;
      }
    }

    function show() {
      var stepping = narrow.matches;
      steps.forEach(function (step, i) { step.hidden = stepping && i !== current; });
      back.hidden = !stepping || current === 0;
      next.hidden = !stepping || current === steps.length - 1;
      submit.hidden = stepping && current !== steps.length - 1;
      status.hidden = !stepping;
      status.textContent = (current + 1) + " / " + steps.length;
    }

    back.addEventListener("click", function () { current = Math.max(0, current - 1); show();
      steps[current].querySelector("input").focus(); });
    next.addEventListener("click", function () {
      current = Math.min(steps.length - 1, current + 1); show();
      steps[current].querySelector("input").focus();
    });
    steps.forEach(function (step, i) {
      step.addEventListener("change", function () {
        if (narrow.matches && i === current && current < steps.length - 1) {
          current += 1; show();
        }
      });
    });
    narrow.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-stepper]").forEach(setUp);
  });
})();
