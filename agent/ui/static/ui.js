// FieldVault local UI: small progressive enhancements; every page works without it.
"use strict";

// Search as you type: fetch the result rows of the customer search.
function customerSearch() {
  const form = document.getElementById("customer-search");
  if (!form) return;
  const rows = document.getElementById("customer-rows");
  let timer = null;
  let seq = 0;
  const run = () => {
    const params = new URLSearchParams(new FormData(form));
    const mine = ++seq;
    fetch(form.dataset.rows + "?" + params.toString(), { credentials: "same-origin" })
      .then((r) => r.text())
      .then((html) => {
        if (mine !== seq) return;
        rows.innerHTML = html;
        history.replaceState(null, "", "/customers?" + params.toString());
      });
  };
  form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 60); });
  // Typed before this script ran: search now.
  const q = form.querySelector("#q");
  if (q && q.value !== q.defaultValue) run();
}

// Customer suggestions (visit and plan forms): a datalist filled as you type.
function suggestions() {
  document.querySelectorAll("input[data-suggest]").forEach((input) => {
    const list = document.getElementById(input.getAttribute("list"));
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      const q = input.value.trim();
      if (q.length < 2) return;
      timer = setTimeout(() => {
        fetch(input.dataset.suggest + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
          .then((r) => r.json())
          .then((items) => {
            list.replaceChildren(...items.map((it) => {
              const o = document.createElement("option");
              o.value = it.id;
              o.label = it.label;
              o.textContent = it.label;
              return o;
            }));
          });
      }, 120);
    });
  });
}

// The browser's position, when the rep allows it, with its accuracy.
function geolocation() {
  const button = document.querySelector("button[data-geo]");
  if (!button || !navigator.geolocation) return;
  const status = document.getElementById("geo-status");
  button.addEventListener("click", () => {
    navigator.geolocation.getCurrentPosition((pos) => {
      document.getElementById("geo_lat").value = pos.coords.latitude;
      document.getElementById("geo_lon").value = pos.coords.longitude;
      document.getElementById("geo_accuracy").value = pos.coords.accuracy;
      status.textContent = button.dataset.msgOk + " " + Math.round(pos.coords.accuracy);
    }, () => { status.textContent = button.dataset.msgFail; }, { timeout: 10000 });
  });
}

// The sync page follows the background sync; a wipe shows the wiped screen.
function syncPoll() {
  const live = document.getElementById("sync-live");
  if (!live) return;
  let rounds = 0;
  let wasSyncing = false;
  const tick = () => {
    if (++rounds > 600) return;
    fetch(live.dataset.poll, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => {
        if (s.device === "wiped" || s.wiped) { location.reload(); return; }
        if (s.syncing) { live.textContent = live.dataset.msgSyncing; wasSyncing = true; }
        else if (wasSyncing) { location.reload(); return; }
        else if (s.online === false) { live.textContent = live.dataset.msgOffline; }
        const pending = document.getElementById("pending");
        if (pending && s.pending !== null && s.pending !== undefined) pending.textContent = s.pending;
        setTimeout(tick, 1500);
      })
      .catch(() => setTimeout(tick, 3000));
  };
  setTimeout(tick, 500);
}

document.addEventListener("DOMContentLoaded", () => {
  customerSearch();
  suggestions();
  geolocation();
  syncPoll();
});
