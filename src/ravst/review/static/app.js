// ravst review page. Vanilla JS, no build step. Every text that comes from the data or from a
// reviewer is written with textContent (never as HTML). The token lives in sessionStorage and
// travels in the Authorization header of every /api call (never in a cookie or a URL).
"use strict";

(function () {
  const TOKEN_KEY = "ravst-review-token";
  const BOX_WINDOW_S = 0.5; // a GT timestamp serves playback times within 0.5 s (metric protocol)
  const COLORS = ["#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#af52de", "#ff9500"];
  const $ = (id) => document.getElementById(id);

  const state = { token: null, item: null, busy: false, scale: {}, loop: false };

  // ---------------------------------------------------------------- API
  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + state.token };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (!response.ok) {
      let detail = data && data.detail !== undefined ? data.detail : response.statusText;
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      const error = new Error(response.status + ": " + detail);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // ---------------------------------------------------------------- login
  async function login(token) {
    state.token = token;
    try {
      const me = await api("GET", "/api/me");
      sessionStorage.setItem(TOKEN_KEY, token);
      state.scale = me.scale || {};
      $("reviewer-name").textContent = me.name;
      $("who").hidden = false;
      $("login-view").hidden = true;
      $("review-view").hidden = false;
      $("login-error").textContent = "";
      showProgress(me.progress);
      await gotoNext();
      await loadHistory();
    } catch (err) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      $("login-error").textContent = err.status === 401 ? "Unknown token." : String(err.message);
    }
  }

  function logout() {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.item = null;
    $("video").removeAttribute("src");
    $("video").load();
    $("who").hidden = true;
    $("review-view").hidden = true;
    $("login-view").hidden = false;
    $("token").value = "";
  }

  // ---------------------------------------------------------------- progress and history
  function showProgress(p) {
    if (!p) return;
    const total = p.scored + p.remaining;
    $("progress-bar").max = Math.max(total, 1);
    $("progress-bar").value = p.scored;
    $("progress-text").textContent = "You: " + p.scored + " scored, " + p.remaining + " to go";
    $("pool-text").textContent = "Pool: " + p.items_complete + " / " + p.items_total + " items fully scored";
  }

  async function loadHistory() {
    const data = await api("GET", "/api/assignments");
    const list = $("history");
    list.replaceChildren();
    for (const a of data.assignments) {
      const li = document.createElement("li");
      li.textContent = a.qa_id + (a.score === null ? "  (open)" : "  → " + a.score);
      li.dataset.itemId = String(a.item_id);
      if (state.item && state.item.id === a.item_id) li.classList.add("active");
      li.addEventListener("click", () => loadItem(a.item_id));
      list.appendChild(li);
    }
  }

  // ---------------------------------------------------------------- items
  async function gotoNext() {
    const next = await api("GET", "/api/next");
    showProgress(next.progress);
    if (next.done) {
      state.item = null;
      const video = $("video");
      video.pause();
      video.removeAttribute("src");
      video.load();
      $("item-view").hidden = true;
      $("done").hidden = false;
      return;
    }
    await loadItem(next.item_id);
  }

  function fmt(t) { return Number(t).toFixed(1); }

  async function loadItem(itemId) {
    const item = await api("GET", "/api/items/" + itemId);
    state.item = item;
    $("done").hidden = true;
    $("item-view").hidden = false;
    $("status").textContent = "";
    $("video-error").textContent = "";
    $("item-kind").textContent = item.kind;
    $("item-id").textContent = item.qa_id;
    const flags = item.flags || [];
    $("flags").hidden = flags.length === 0;
    $("flags").textContent = flags.length ? "Flagged for review: " + flags.join("; ") : "";
    $("question").textContent = item.question;
    $("answer-objects").textContent = item.answer.objects.join(", ") || "—";
    const spanText = (s) => "[" + fmt(s[0]) + " s, " + fmt(s[1]) + " s]";
    $("answer-when").textContent = item.answer.spans.length
      ? item.answer.spans.map(spanText).join(" ")
      : item.query_span ? "— (the question asks about " + spanText(item.query_span) + ")" : "—";
    const where = $("answer-where");
    where.replaceChildren();
    item.answer.tracks.forEach((track, i) => {
      const div = document.createElement("div");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.textContent = "■ ";
      swatch.style.color = COLORS[i % COLORS.length];
      const nonEmpty = track.xyxy.filter((b) => b[2] > b[0] && b[3] > b[1]).length;
      const times = track.times_s;
      const range = times.length ? fmt(Math.min(...times)) + "–" + fmt(Math.max(...times)) + " s" : "";
      div.appendChild(swatch);
      div.appendChild(document.createTextNode(
        (track.name || "(unnamed)") + ": " + nonEmpty + " boxes " + range));
      where.appendChild(div);
    });
    if (!item.answer.tracks.length) where.textContent = "—";
    $("note").value = item.own ? item.own.note : "";
    markSelected(item.own ? item.own.score : null);
    buildTimeline(item);
    const video = $("video");
    if (item.video_url) {
      video.src = item.video_url;
    } else {
      video.removeAttribute("src");
      $("video-error").textContent = "The video file of this item is missing on the server.";
    }
    video.load();
    for (const li of $("history").children) {
      li.classList.toggle("active", li.dataset.itemId === String(item.id));
    }
    draw();
  }

  // fit the clip (portrait or landscape) in the window with its controls visible
  function fitVideo() {
    const video = $("video");
    const vw = video.videoWidth, vh = video.videoHeight;
    if (!vw || !vh) return;
    const player = $("player");
    const top = $("stage").getBoundingClientRect().top + window.scrollY;
    const reserved = 7 * parseFloat(getComputedStyle(document.documentElement).fontSize);
    const maxW = player.clientWidth;
    const maxH = Math.max(160, window.innerHeight - Math.min(top, window.innerHeight / 3) - reserved);
    const scale = Math.min(maxW / vw, maxH / vh);
    video.style.width = Math.floor(vw * scale) + "px";
    video.style.height = Math.floor(vh * scale) + "px";
    draw();
  }

  function showUnmuteHint() {
    const video = $("video");
    $("unmute-hint").hidden = !video.muted && video.volume > 0;
  }

  function markSelected(score) {
    for (const button of document.querySelectorAll(".score")) {
      button.classList.toggle("selected", Number(button.dataset.score) === score);
    }
    const help = state.scale[String(score)];
    $("scale-help").textContent = help ? score + " = " + help : "";
  }

  async function submitScore(score) {
    const item = state.item;
    if (!item || state.busy) return;
    state.busy = true;
    const note = $("note").value;
    const revise = !!item.own && (item.own.score !== score || item.own.note !== note.trim());
    $("status").textContent = "Saving…";
    try {
      const result = await api("POST", "/api/items/" + item.id + "/score", { score, note, revise });
      markSelected(result.score);
      item.own = { score: result.score, note: result.note };
      $("status").textContent = "Saved: " + result.score + " (" + result.status + ")";
      showProgress(result.progress);
      await gotoNext();
      await loadHistory();
    } catch (err) {
      $("status").textContent = "Not saved: " + err.message;
    } finally {
      state.busy = false;
    }
  }

  // ---------------------------------------------------------------- timeline
  function duration(item) {
    const video = $("video");
    if (video.duration && isFinite(video.duration)) return video.duration;
    return item.duration_s || 1;
  }

  function buildTimeline(item) {
    const box = $("timeline-events");
    box.replaceChildren();
    const total = Math.max(item.duration_s || 0, 1e-6);
    for (const event of item.timeline) {
      if (!event.span) continue;
      const bar = document.createElement("div");
      bar.className = "event" + (event.current ? " current" : "");
      const left = Math.max(0, Math.min(100, (100 * event.span[0]) / total));
      const width = Math.max(0.5, Math.min(100 - left, (100 * (event.span[1] - event.span[0])) / total));
      bar.style.left = left + "%";
      bar.style.width = width + "%";
      const label = "event " + event.event_index + ": " + event.objects.join(", ") +
        " [" + fmt(event.span[0]) + "–" + fmt(event.span[1]) + " s]";
      bar.textContent = label;
      bar.title = label;
      box.appendChild(bar);
    }
    $("timeline-end").textContent = fmt(item.duration_s) + " s";
  }

  function seekFromTimeline(ev) {
    if (!state.item) return;
    const rect = $("timeline").getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (ev.clientX - rect.left) / rect.width));
    $("video").currentTime = fraction * duration(state.item);
  }

  // ---------------------------------------------------------------- boxes over the video
  // The boxes shown at playback time t: for each track, the rows at the GT timestamp nearest
  // to t when it is within BOX_WINDOW_S (GT is 1 Hz); zero-area rows mean "no box".
  function boxesAt(track, t) {
    let best = null;
    for (const time of track.times_s) {
      const d = Math.abs(time - t);
      if (d <= BOX_WINDOW_S && (best === null || d < Math.abs(best - t))) best = time;
    }
    if (best === null) return [];
    const out = [];
    track.times_s.forEach((time, i) => {
      const b = track.xyxy[i];
      if (time === best && b[2] > b[0] && b[3] > b[1]) out.push(b);
    });
    return out;
  }

  function draw() {
    const video = $("video");
    const canvas = $("overlay");
    const w = video.clientWidth;
    const h = video.clientHeight;
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
      canvas.style.width = w + "px";
      canvas.style.height = h + "px";
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const item = state.item;
    if (item) {
      $("playhead").style.left = (100 * video.currentTime) / duration(item) + "%";
    }
    if (!item || !video.videoWidth || !video.videoHeight) return;
    const sx = w / video.videoWidth;
    const sy = h / video.videoHeight;
    ctx.lineWidth = 3;
    ctx.font = "bold 13px sans-serif";
    ctx.textBaseline = "top";
    item.answer.tracks.forEach((track, i) => {
      const color = COLORS[i % COLORS.length];
      for (const b of boxesAt(track, video.currentTime)) {
        const x = b[0] * sx, y = b[1] * sy, bw = (b[2] - b[0]) * sx, bh = (b[3] - b[1]) * sy;
        ctx.strokeStyle = color;
        ctx.strokeRect(x, y, bw, bh);
        const label = track.name || "(unnamed)";
        const tw = ctx.measureText(label).width + 6;
        ctx.fillStyle = color;
        ctx.fillRect(x, Math.max(0, y - 16), tw, 16);
        ctx.fillStyle = "#000";
        ctx.fillText(label, x + 3, Math.max(0, y - 16) + 2);
      }
    });
  }

  // One redraw chain at a time: per presented frame where the browser supports
  // requestVideoFrameCallback, else per animation frame while playing.
  function frameLoop() {
    draw();
    const video = $("video");
    if (typeof video.requestVideoFrameCallback === "function") {
      video.requestVideoFrameCallback(frameLoop);
    } else if (!video.paused) {
      requestAnimationFrame(frameLoop);
    } else {
      state.loop = false;
    }
  }

  function startLoop() {
    if (state.loop) return;
    state.loop = true;
    frameLoop();
  }

  // ---------------------------------------------------------------- wiring
  function onKey(ev) {
    if (!state.item || $("review-view").hidden) return;
    const tag = ev.target && ev.target.tagName;
    if (tag === "TEXTAREA" || tag === "INPUT") return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const video = $("video");
    if (ev.key >= "1" && ev.key <= "4") {
      ev.preventDefault();
      submitScore(Number(ev.key));
    } else if (ev.key === " ") {
      ev.preventDefault();
      if (video.paused) video.play(); else video.pause();
    } else if (ev.key === "ArrowLeft") {
      ev.preventDefault();
      video.currentTime = Math.max(0, video.currentTime - 1);
    } else if (ev.key === "ArrowRight") {
      ev.preventDefault();
      video.currentTime = video.currentTime + 1;
    } else if (ev.key === "m" || ev.key === "M") {
      ev.preventDefault();
      video.muted = !video.muted;
      if (!video.muted && video.volume === 0) video.volume = 1;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      login($("token").value.trim());
    });
    $("logout").addEventListener("click", logout);
    for (const button of document.querySelectorAll(".score")) {
      button.addEventListener("click", () => submitScore(Number(button.dataset.score)));
    }
    $("timeline").addEventListener("click", seekFromTimeline);
    const video = $("video");
    for (const name of ["loadedmetadata", "seeked", "timeupdate", "pause", "resize"]) {
      video.addEventListener(name, draw);
    }
    video.addEventListener("loadedmetadata", fitVideo);
    video.addEventListener("volumechange", showUnmuteHint);
    window.addEventListener("resize", fitVideo);
    showUnmuteHint();
    video.addEventListener("play", startLoop);
    video.addEventListener("error", () => {
      if (video.getAttribute("src")) $("video-error").textContent = "The browser cannot play this video.";
    });
    window.addEventListener("resize", draw);
    document.addEventListener("keydown", onKey);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) login(saved);
  });
})();
