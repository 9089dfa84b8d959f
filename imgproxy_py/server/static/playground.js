// imgproxy-py playground: builds imgproxy URLs from the controls, has the server sign them
// (the key never reaches the browser) and shows the result, /info and a srcset snippet.
// Plain browser JavaScript, no build step and no dependencies.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = { caps: null, source: "", images: [], seq: 0, objectUrls: [], pinned: null };
  const WATERMARK_POSITIONS = ["ce", "no", "so", "ea", "we", "noea", "nowe", "soea", "sowe", "re"];
  const SNIPPET_FORMATS = ["avif", "webp"];

  // --- talking to the server -----------------------------------------------------------

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
  }

  async function sign(paths) {
    const response = await fetch("playground/api/sign", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ paths }),
    });
    if (!response.ok) throw new Error(`signing failed: ${response.status}`);
    return (await response.json()).signed;
  }

  // --- URL building (mirrors imgproxy_py.url) -------------------------------------------

  function base64url(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function escapePlain(url) {
    return encodeURI(url).replace(/\?/g, "%3F").replace(/#/g, "%23").replace(/@/g, "%40");
  }

  function sourcePart(source, encoding, ext) {
    if (encoding === "base64") return base64url(source) + (ext ? `.${ext}` : "");
    return "plain/" + escapePlain(source) + (ext ? `@${ext}` : "");
  }

  const num = (id) => {
    const value = Number($(id).value);
    return Number.isFinite(value) && value > 0 ? value : 0;
  };
  const fmt = (n) => String(Math.round(n * 1000) / 1000);

  // The options the controls describe, as imgproxy option segments (shortest aliases).
  function optionSegments() {
    const sep = state.caps.separator;
    const opt = (...parts) => parts.map(String).join(sep);
    const out = [];
    const presets = [...document.querySelectorAll("#presets input:checked")].map((el) => el.value);
    if (presets.length) out.push(opt("pr", ...presets));
    const cw = num("cw");
    const ch = num("ch");
    if (cw || ch) out.push(opt("c", fmt(cw), fmt(ch)));
    out.push(opt("rs", $("rt").value, Math.round(num("w")), Math.round(num("h")), $("el").checked ? 1 : 0, $("ex").checked ? 1 : 0));
    if (num("dpr") && num("dpr") !== 1) out.push(opt("dpr", fmt(num("dpr"))));
    const gravity = $("g").value;
    if (gravity === "fp") out.push(opt("g", "fp", fmt(Math.min(1, num("fpx"))), fmt(Math.min(1, num("fpy")))));
    else if (gravity !== "ce") out.push(opt("g", gravity));
    if (num("pd")) out.push(opt("pd", Math.round(num("pd"))));
    if ($("usebg").checked) out.push(opt("bg", $("bg").value.slice(1)));
    if ($("rot").value !== "0") out.push(opt("rot", $("rot").value));
    if ($("flh").checked || $("flv").checked) out.push(opt("fl", $("flh").checked ? 1 : 0, $("flv").checked ? 1 : 0));
    if (num("bl")) out.push(opt("bl", fmt(num("bl"))));
    if (num("sh")) out.push(opt("sh", fmt(num("sh"))));
    if (num("pix") > 1) out.push(opt("pix", Math.round(num("pix"))));
    if (state.caps.watermark && num("wmo")) out.push(opt("wm", fmt(Math.min(1, num("wmo"))), $("wmp").value));
    if ($("aq").checked && state.caps.autoquality) out.push(opt("aq", "dssim"));
    else if (num("q")) out.push(opt("q", Math.min(100, Math.round(num("q")))));
    return out;
  }

  function encoding() {
    return document.querySelector("input[name=encoding]:checked").value;
  }

  function unsignedPath(segments, enc, ext) {
    return "/" + [...segments, sourcePart(state.source, enc, ext)].join("/");
  }

  // --- the result ------------------------------------------------------------------------

  function revokeLater(url) {
    state.objectUrls.push(url);
    while (state.objectUrls.length > 6) URL.revokeObjectURL(state.objectUrls.shift());
  }

  async function fetchImage(path) {
    const started = performance.now();
    const response = await fetch(path, { cache: "no-store" });
    const blob = await response.blob();
    return { response, blob, ms: performance.now() - started };
  }

  function showError(text) {
    $("error").hidden = !text;
    $("error").textContent = text || "";
  }

  async function update() {
    if (!state.caps || !state.source) return;
    const seq = ++state.seq;
    const segments = optionSegments();
    const ext = $("f").value;
    const [plain, b64] = await sign([unsignedPath(segments, "plain", ext), unsignedPath(segments, "base64", ext)]);
    if (seq !== state.seq) return;
    const origin = window.location.origin;
    $("url-plain").value = origin + plain;
    $("url-base64").value = origin + b64;
    $("open-url").href = encoding() === "base64" ? b64 : plain;
    const shown = encoding() === "base64" ? b64 : plain;
    const { response, blob, ms } = await fetchImage(shown);
    if (seq !== state.seq) return;
    if (!response.ok) {
      showError(`${response.status}: ${await blob.text()}`);
      $("status").textContent = "The server refused these options (see below).";
      clearResult();
      return;
    }
    showError("");
    const url = URL.createObjectURL(blob);
    revokeLater(url);
    const result = $("result");
    delete result.dataset.ready; // until the new image is in
    result.dataset.url = shown;
    await new Promise((resolve) => {
      result.onload = resolve;
      result.onerror = resolve;
      result.src = url;
    });
    if (seq !== state.seq) return;
    $("s-dim").textContent = `${result.naturalWidth} × ${result.naturalHeight}`;
    $("s-bytes").textContent = blob.size.toLocaleString("en");
    $("s-format").textContent = (response.headers.get("Content-Type") || "").replace("image/", "");
    $("s-time").textContent = `${Math.round(ms)} ms`;
    $("s-cache").textContent = response.headers.get("X-Cache") || "–";
    $("status").textContent = `Showing ${state.source}`;
    result.dataset.ready = String(seq);
    await updateOriginal(result.naturalWidth, result.naturalHeight, seq);
    await updateSnippet(segments, result.naturalWidth, result.naturalHeight);
  }

  function clearResult() {
    for (const id of ["s-dim", "s-bytes", "s-format", "s-time", "s-cache"]) $(id).textContent = "–";
    $("result").removeAttribute("src");
    $("original").removeAttribute("src");
    delete $("result").dataset.ready;
    $("snippet").value = "";
  }

  async function updateOriginal(width, height, seq) {
    if ($("compare-with").value === "pinned" && state.pinned) {
      // Two option sets side by side: the pinned result A under the current one.
      $("original").src = state.pinned.url;
      $("slider-label").textContent = `A (${state.pinned.label})`;
      return;
    }
    $("slider-label").textContent = "original";
    // The untouched source, fitted to the result's box so the two line up under the slider.
    const fit = `rs${state.caps.separator}fit${state.caps.separator}${width}${state.caps.separator}${height}`;
    const [path] = await sign([unsignedPath([fit], "plain", "png")]);
    if (seq === state.seq) $("original").src = path;
  }

  function pin() {
    const result = $("result");
    if (!result.dataset.ready || !result.src) return;
    if (state.pinned) URL.revokeObjectURL(state.pinned.url);
    const kept = state.objectUrls.indexOf(result.src);
    if (kept >= 0) state.objectUrls.splice(kept, 1); // never revoked while pinned
    state.pinned = { url: result.src, label: optionSegments().join("/") };
    const option = document.querySelector("#compare-with option[value=pinned]");
    option.disabled = false;
    $("compare-with").value = "pinned";
    $("original").src = state.pinned.url;
    $("slider-label").textContent = `A (${state.pinned.label})`;
  }

  function applySlider() {
    $("after").style.clipPath = `inset(0 0 0 ${$("slider").value}%)`;
    $("divider").style.left = `${$("slider").value}%`;
  }

  // --- /info -------------------------------------------------------------------------------

  async function updateInfo() {
    const [signed] = await sign([unsignedPath([], "plain", "")]);
    const prefix = state.caps.path_prefix;
    const response = await fetch(prefix + "/info" + signed.slice(prefix.length));
    if (!response.ok) {
      $("info-facts").textContent = `/info: ${response.status} ${await response.text()}`;
      $("swatches").replaceChildren();
      $("info-preview").removeAttribute("src");
      const canvas = $("blurhash");
      canvas.dataset.hash = "";
      canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
      return;
    }
    const info = await response.json();
    $("info-facts").textContent =
      `${info.width} × ${info.height} ${info.format}, ${Number(info.file_size).toLocaleString("en")} bytes` +
      (info.animation ? `, ${info.animation.frames} frames` : "");
    const swatches = $("swatches");
    swatches.replaceChildren();
    const colours = [{ color: info.average_color, label: "average" }].concat(
      (info.dominant_colors || []).map((d) => ({ color: d.color, label: `${Math.round(d.share * 100)}%` })),
    );
    for (const { color, label } of colours) {
      if (!color) continue;
      const swatch = document.createElement("div");
      swatch.className = "swatch";
      swatch.style.backgroundColor = color;
      swatch.title = color;
      swatch.textContent = label;
      swatches.append(swatch);
    }
    const canvas = $("blurhash");
    canvas.dataset.hash = info.blurhash || "";
    // The placeholder keeps the source's aspect ratio, as a page using it would.
    canvas.height = Math.max(1, Math.round((canvas.width * info.height) / Math.max(1, info.width)));
    canvas.style.height = `${Math.round((160 * info.height) / Math.max(1, info.width))}px`;
    if (info.blurhash) drawBlurHash(canvas, info.blurhash);
    const sep = state.caps.separator;
    const [preview] = await sign([unsignedPath([`rs${sep}fit${sep}160${sep}160`], "plain", "png")]);
    $("info-preview").src = preview;
    drawFaces(info);
  }

  function drawFaces(info) {
    const holder = $("faces");
    holder.querySelectorAll(".face-box").forEach((el) => el.remove());
    if (!Array.isArray(info.faces)) {
      $("info-faces").textContent = state.caps.face_gravity ? "faces: none reported" : "faces: face detection is not available on this server";
      return;
    }
    $("info-faces").textContent = `faces: ${info.faces.length}`;
    for (const face of info.faces) {
      const rel = face.width <= 1 && face.height <= 1;
      const box = document.createElement("div");
      box.className = "face-box";
      box.style.left = `${(rel ? face.x : face.x / info.width) * 100}%`;
      box.style.top = `${(rel ? face.y : face.y / info.height) * 100}%`;
      box.style.width = `${(rel ? face.width : face.width / info.width) * 100}%`;
      box.style.height = `${(rel ? face.height : face.height / info.height) * 100}%`;
      holder.append(box);
    }
  }

  // BlurHash decoding (Wolt's published algorithm). Written out here rather than vendored:
  // the npm package ships ES/CommonJS modules that would need a loader or a build step.
  const B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
  const decode83 = (s) => [...s].reduce((v, c) => v * 83 + B83.indexOf(c), 0);
  const toLinear = (v) => { const x = v / 255; return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
  const toSRGB = (v) => {
    const x = Math.max(0, Math.min(1, v));
    return Math.round((x <= 0.0031308 ? x * 12.92 : 1.055 * x ** (1 / 2.4) - 0.055) * 255);
  };
  const signPow = (v, e) => Math.sign(v) * Math.abs(v) ** e;

  function drawBlurHash(canvas, hash) {
    const size = decode83(hash[0]);
    const nx = (size % 9) + 1;
    const ny = Math.floor(size / 9) + 1;
    const maxAc = (decode83(hash[1]) + 1) / 166;
    const colors = [];
    const dc = decode83(hash.slice(2, 6));
    colors.push([toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]);
    for (let i = 1; i < nx * ny; i++) {
      const v = decode83(hash.slice(4 + i * 2, 6 + i * 2));
      colors.push([Math.floor(v / 361), Math.floor(v / 19) % 19, v % 19].map((q) => signPow((q - 9) / 9, 2) * maxAc));
    }
    const w = canvas.width;
    const h = canvas.height;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(w, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const px = [0, 0, 0];
        for (let j = 0; j < ny; j++) {
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos((Math.PI * x * i) / w) * Math.cos((Math.PI * y * j) / h);
            const c = colors[i + j * nx];
            px[0] += c[0] * basis; px[1] += c[1] * basis; px[2] += c[2] * basis;
          }
        }
        const o = 4 * (x + y * w);
        img.data[o] = toSRGB(px[0]); img.data[o + 1] = toSRGB(px[1]); img.data[o + 2] = toSRGB(px[2]); img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  // --- srcset / <picture> snippet --------------------------------------------------------

  function snippetWidths() {
    return $("widths").value.split(",").map((v) => Math.round(Number(v.trim())))
      .filter((v) => Number.isFinite(v) && v > 0 && v <= 8192).slice(0, 8);
  }

  async function updateSnippet(segments, width, height) {
    const widths = snippetWidths();
    if (!widths.length || !width) { $("snippet").value = ""; return; }
    const sep = state.caps.separator;
    const formats = [...document.querySelectorAll("#snippet-formats input:checked")].map((el) => el.value);
    const fallback = $("f").value && !SNIPPET_FORMATS.includes($("f").value) ? $("f").value : "jpg";
    const all = [...formats, fallback];
    const paths = [];
    for (const f of all) {
      for (const w of widths) {
        const extra = [`w${sep}${w}`, `h${sep}${Math.round((height * w) / width)}`];
        paths.push(unsignedPath([...segments, ...extra], encoding(), f));
      }
    }
    const signed = await sign(paths);
    const origin = window.location.origin;
    const srcset = (k) => widths.map((w, i) => `${origin}${signed[k * widths.length + i]} ${w}w`).join(", ");
    const sizes = $("sizes").value.replace(/"/g, "");
    const lines = ["<picture>"];
    formats.forEach((f, k) => lines.push(`  <source type="image/${f}" srcset="${srcset(k)}" sizes="${sizes}">`));
    const k = formats.length;
    const mid = signed[k * widths.length + Math.floor((widths.length - 1) / 2)];
    lines.push(
      `  <img src="${origin}${mid}" srcset="${srcset(k)}" sizes="${sizes}" width="${width}" height="${height}" alt="" loading="lazy" decoding="async">`,
    );
    lines.push("</picture>");
    $("snippet").value = lines.join("\n");
  }

  // --- set-up ------------------------------------------------------------------------------

  function fillSelect(select, values, selected) {
    select.replaceChildren(...values.map(([value, label]) => {
      const o = document.createElement("option");
      o.value = value;
      o.textContent = label;
      o.selected = value === selected;
      return o;
    }));
  }

  function chooseSource(url) {
    state.source = url;
    $("source").value = url;
    document.querySelectorAll("#images button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.url === url)));
    schedule();
    updateInfo().catch(report);
  }

  async function listImages() {
    const { images } = await getJSON("playground/api/images");
    state.images = images;
    if (!images.length) return;
    const sep = state.caps.separator;
    const signed = await sign(images.map((im) => `/rs${sep}fill${sep}128${sep}128/g${sep}sm/${sourcePart(im.url, "plain", "webp")}`));
    const holder = $("images");
    holder.replaceChildren(...images.map((im, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.url = im.url;
      button.setAttribute("role", "listitem");
      button.setAttribute("aria-pressed", "false");
      button.title = im.name;
      const img = document.createElement("img");
      img.src = signed[i];
      img.alt = im.name;
      button.append(img);
      button.addEventListener("click", () => chooseSource(im.url));
      return button;
    }));
  }

  let timer = 0;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(() => update().catch(report), 200);
  }

  function report(error) {
    $("status").textContent = `Error: ${error.message}`;
  }

  async function start() {
    const caps = await getJSON("playground/api/capabilities");
    state.caps = caps;
    fillSelect($("rt"), caps.resizing_types.map((t) => [t, t]), "fill");
    const gravities = caps.gravity.map((g) => [g, { sm: "smart (sm)", face: "face" }[g] || g]);
    if (caps.focus_point) gravities.push(["fp", "focus point (fp)"]);
    fillSelect($("g"), gravities, "sm");
    const formats = [["", "auto (source / Accept)"], ...caps.formats.map((f) => [f, f])];
    if (caps.format_best) formats.push(["best", "best"]);
    fillSelect($("f"), formats, "");
    fillSelect($("wmp"), WATERMARK_POSITIONS.map((p) => [p, p]), "soea");
    $("watermark").hidden = !caps.watermark;
    $("aq-label").hidden = !caps.autoquality;
    $("presets").replaceChildren(...caps.presets.map((name) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = name;
      label.append(box, ` preset ${name}`);
      return label;
    }));
    $("snippet-formats").replaceChildren(...SNIPPET_FORMATS.filter((f) => caps.formats.includes(f)).map((f) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = f;
      box.checked = true;
      label.append(box, ` ${f}`);
      return label;
    }));
    const showFocus = () => document.querySelectorAll(".fp").forEach((el) => { el.hidden = $("g").value !== "fp"; });
    $("g").addEventListener("change", showFocus);
    $("controls").addEventListener("input", schedule);
    $("controls").addEventListener("change", schedule);
    $("controls").addEventListener("submit", (e) => e.preventDefault());
    $("source").addEventListener("change", () => chooseSource($("source").value.trim()));
    $("widths").addEventListener("change", schedule);
    $("sizes").addEventListener("change", schedule);
    $("snippet-formats").addEventListener("change", schedule);
    $("slider").addEventListener("input", applySlider);
    $("pin").addEventListener("click", pin);
    $("compare-with").addEventListener("change", () => {
      const r = $("result");
      if (r.dataset.ready) updateOriginal(r.naturalWidth, r.naturalHeight, state.seq).catch(report);
    });
    applySlider();
    $("copy-url").addEventListener("click", () => copy($(encoding() === "base64" ? "url-base64" : "url-plain").value));
    $("copy-snippet").addEventListener("click", () => copy($("snippet").value));
    const signing = caps.signing ? `signed by the server (${caps.signature_size}-byte signatures)` : "unsigned (no key set)";
    $("status").textContent = `imgproxy-py ${caps.version}: URLs are ${signing}.`;
    await listImages();
    if (state.images.length) chooseSource(state.images[0].url);
  }

  function copy(text) {
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  }

  start().catch(report);
})();
