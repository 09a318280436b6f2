// The camera and microphone check on a video visit's page, and its "Join" button shown in its
// time window. Nothing leaves the browser: the stream is shown here and stopped.
(function () {
  "use strict";
  function joinWindow() {
    document.querySelectorAll("[data-join]").forEach(function (link) {
      var opens = Date.parse(link.dataset.opens);
      var closes = Date.parse(link.dataset.closes);
      function update() {
        var t = Date.now();
        link.hidden = !(t >= opens && t <= closes);
      }
      update();
      setInterval(update, 15000);
    });
  }
  function deviceCheck(box) {
    var start = box.querySelector("[data-device-check-start]");
    var result = box.querySelector("[data-device-check-result]");
    var video = box.querySelector("[data-device-check-video]");
    var meter = box.querySelector("[data-device-check-level]");
    start.addEventListener("click", function () {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        result.textContent = box.dataset.unsupported;
        return;
      }
      navigator.mediaDevices.getUserMedia({ video: true, audio: true }).then(function (stream) {
        result.textContent = box.dataset.ok;
        box.dataset.checked = "ok";
        video.srcObject = stream;
        video.hidden = false;
        video.play().catch(function () {});
        var Ctx = window.AudioContext || window.webkitAudioContext;
        if (Ctx) {
          var ctx = new Ctx();
          var analyser = ctx.createAnalyser();
          ctx.createMediaStreamSource(stream).connect(analyser);
          var data = new Uint8Array(analyser.fftSize);
          meter.hidden = false;
          var ticks = 0;
          var timer = setInterval(function () {
            analyser.getByteTimeDomainData(data);
            var peak = 0;
            for (var i = 0; i < data.length; i++) {
              peak = Math.max(peak, Math.abs(data[i] - 128) / 128);
            }
            meter.value = peak;
            if (++ticks > 150) {
              clearInterval(timer);
              stream.getTracks().forEach(function (t) { t.stop(); });
              ctx.close();
            }
          }, 100);
        } else {
          setTimeout(function () { stream.getTracks().forEach(function (t) { t.stop(); }); }, 15000);
        }
      }).catch(function (err) {
        var name = err && err.name;
        box.dataset.checked = "failed";
        result.textContent = name === "NotFoundError" || name === "OverconstrainedError"
          ? box.dataset.missing : box.dataset.denied;
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    joinWindow();
    document.querySelectorAll("[data-device-check]").forEach(deviceCheck);
  });
})();
