// On a phone, a check-in shows one question per screen with Back and Next. Without this
// script (or on a wide screen) every question is on one page; both send the same form.
// A required question must be answered (or, where the questionnaire allows it, declined)
// before Next goes on and before the answers are sent; the server refuses them too.
(function () {
  "use strict";
  var narrow = window.matchMedia("(max-width: 40rem)");

  function answered(step) { return !!step.querySelector("input:checked"); }
  function needed(step) { return step.getAttribute("data-required") === "yes" && !answered(step); }

  function setUp(form) {
    var steps = Array.prototype.slice.call(form.querySelectorAll("fieldset.question"));
    if (!steps.length) { return; }
    var back = form.querySelector("[data-step-back]");
    var next = form.querySelector("[data-step-next]");
    var submit = form.querySelector("[data-submit]");
    var status = form.querySelector(".step-status");
    var missing = form.getAttribute("data-msg-required") || "";
    var current = 0;
    // The script checks the answers itself and says what is missing in words, on the step.
    form.noValidate = true;
    // Start at the first unanswered question (or one with an error).
    for (var i = 0; i < steps.length; i++) {
      if (steps[i].classList.contains("has-error") || !answered(steps[i])) {
        current = i; break;
      }
    }

    function focusStep(step) {
      var input = step.querySelector("input:checked") || step.querySelector("input");
      if (input) { input.focus(); }
    }

    function clearProblem(step) {
      var p = step.querySelector(".error[data-step-error]");
      if (p) { p.remove(); }
    }

    function showProblem(step) {
      clearProblem(step);
      var p = document.createElement("p");
      p.className = "error";
      p.setAttribute("data-step-error", "");
      p.setAttribute("role", "alert");
      p.textContent = missing;
      var choices = step.querySelector(".choices");
      step.insertBefore(p, choices);
      step.classList.add("has-error");
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

    function go(to) {
      current = Math.max(0, Math.min(steps.length - 1, to));
      show();
      focusStep(steps[current]);
    }

    back.addEventListener("click", function () { go(current - 1); });
    next.addEventListener("click", function () {
      if (needed(steps[current])) {
        showProblem(steps[current]);
        focusStep(steps[current]);
        return;
      }
      go(current + 1);
    });
    steps.forEach(function (step, i) {
      step.addEventListener("change", function () {
        clearProblem(step);
        step.classList.remove("has-error");
        if (narrow.matches && i === current && current < steps.length - 1) {
          // Focus goes to the next question, not to the page: the answered one is hidden.
          go(current + 1);
        }
      });
    });
    form.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      if (submitter && submitter.hasAttribute("data-save")) { return; }
      for (var j = 0; j < steps.length; j++) {
        if (needed(steps[j])) {
          event.preventDefault();
          current = j;
          show();
          showProblem(steps[j]);
          steps[j].scrollIntoView({ block: "start" });
          focusStep(steps[j]);
          return;
        }
      }
    });
    narrow.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-stepper]").forEach(setUp);
  });
})();
