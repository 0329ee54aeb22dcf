// The console's own script: a beep for each scan result (a keyboard-wedge scanner gives no
// feedback of its own), and the scan field back in focus after every swap, so the next scan
// goes in without a tap. Everything else is htmx attributes in the templates.
(function () {
  let audio = null;
  function beep(ok) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = ok ? 1200 : 220;
      osc.type = ok ? "sine" : "square";
      gain.gain.value = 0.15;
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(); osc.stop(audio.currentTime + (ok ? 0.12 : 0.45));
    } catch (e) { /* no audio device: the coloured result still shows */ }
  }
  document.addEventListener("htmx:afterSwap", function () {
    const result = document.querySelector("[data-beep]");
    if (result) { beep(result.dataset.beep === "ok"); }
    const next = document.querySelector("#scan:not([disabled])") || document.querySelector("#weight:not([disabled])");
    if (next) { next.focus(); }
  });
  // SLA countdowns tick once a minute without a reload.
  setInterval(function () {
    document.querySelectorAll(".sla[data-seconds]").forEach(function (el) {
      const left = parseInt(el.dataset.seconds, 10) - 60;
      el.dataset.seconds = String(left);
      if (left < 0) { el.classList.add("late"); }
    });
  }, 60000);
})();
// "Select all" boxes of bulk actions.
document.addEventListener("change", function (e) {
  const name = e.target && e.target.dataset ? e.target.dataset.selectAll : null;
  if (name) {
    document.querySelectorAll("input[name=" + name + "]").forEach(function (c) { c.checked = e.target.checked; });
  }
});
