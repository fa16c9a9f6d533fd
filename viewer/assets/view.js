// shmkit view: the page's client. One WebSocket brings the segment's state (JSON, every
// refresh) and the newest frame of each watched ring (binary, at most the chosen frames/s);
// everything here draws what it brings. No third-party code, no build step.
'use strict';

(() => {
  // The token reached us in the URL; the server has set it as a cookie, so it can leave the
  // address bar (and the browser's history).
  if (new URLSearchParams(location.search).has('token')) {
    history.replaceState(null, '', location.pathname);
  }

  const ELEM = {
    1: ['u8', Uint8Array], 2: ['u16', Uint16Array], 3: ['u32', Uint32Array],
    4: ['i16', Int16Array], 5: ['i32', Int32Array], 6: ['f32', Float32Array],
    7: ['f64', Float64Array],
  };

  // Colour maps as 256-entry lookup tables, interpolated between control points.
  const lut = (points) => {
    const table = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) {
      const t = i / 255 * (points.length - 1);
      const k = Math.min(Math.floor(t), points.length - 2);
      const f = t - k;
      for (let c = 0; c < 3; c++) {
        table[i * 3 + c] = Math.round(points[k][c] + (points[k + 1][c] - points[k][c]) * f);
      }
    }
    return table;
  };
  const COLORMAPS = {
    grey: lut([[0, 0, 0], [255, 255, 255]]),
    viridis: lut([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]]),
    inferno: lut([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]]),
    coolwarm: lut([[59, 76, 192], [141, 176, 254], [221, 221, 221], [244, 154, 123], [180, 4, 38]]),
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, children = []) => {
    const e = document.createElement(tag);
    Object.assign(e, props);
    for (const c of children) e.append(c);
    return e;
  };

  // A duration in nanoseconds as people read it.
  const ns = (v) => {
    if (v === null || v === undefined) return '-';
    if (v < 1e3) return `${v.toFixed(0)} ns`;
    if (v < 1e6) return `${(v / 1e3).toFixed(1)} µs`;
    if (v < 1e9) return `${(v / 1e6).toFixed(2)} ms`;
    return `${(v / 1e9).toFixed(2)} s`;
  };
  const num = (v) => (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0))
    ? v.toExponential(3) : (+v.toPrecision(6)).toString();

  let ws = null;
  let fps = 30;
  const views = new Map(); // ring name -> image or 1-D plot view
  const values = new Map(); // shared value name -> { card, history }
  const histograms = new Map();
  let lastState = null;

  // ------------------------------------------------------------------ frames

  function parseFrame(buf) {
    const d = new DataView(buf);
    const nameLen = d.getUint16(4, true);
    const elem = ELEM[d.getUint8(6)];
    const ndim = d.getUint8(7);
    const dims = [];
    for (let i = 0; i < ndim; i++) dims.push(d.getUint32(32 + 4 * i, true));
    const dataLen = d.getUint32(48, true);
    const name = new TextDecoder().decode(new Uint8Array(buf, 56, nameLen));
    const offset = 56 + Math.ceil(nameLen / 8) * 8;
    if (!elem || offset + dataLen > buf.byteLength) return null;
    const Ctor = elem[1];
    return {
      name, dims, elem: elem[0],
      id: Number(d.getBigUint64(8, true)),
      tsNs: Number(d.getBigUint64(16, true)),
      rateHz: d.getFloat64(24, true),
      data: new Ctor(buf, offset, Math.floor(dataLen / Ctor.BYTES_PER_ELEMENT)),
    };
  }

  // How a ring is drawn: an image (the last two dimensions of its first plane) or, when it
  // has a single dimension longer than one, a line plot.
  function kindOf(dims) {
    return dims.filter((d) => d > 1).length >= 2 ? 'image' : 'plot';
  }

  function isMirror(name) {
    return /(^|\/)shape$/.test(name);
  }

  function imageView(name, mirror) {
    const canvas = el('canvas', { className: 'image' });
    canvas.dataset.ring = name;
    const cmap = el('select', {}, Object.keys(COLORMAPS).map((k) => el('option', { value: k, textContent: k })));
    cmap.value = mirror ? 'coolwarm' : 'grey';
    const scale = el('select', {}, ['auto', 'fixed'].map((k) => el('option', { value: k, textContent: `${k} scale` })));
    const lo = el('input', { type: 'number', placeholder: 'min', step: 'any' });
    const hi = el('input', { type: 'number', placeholder: 'max', step: 'any' });
    const zoom = el('select', {}, ['fit', '1', '2', '4', '8'].map((k) => el('option', { value: k, textContent: k === 'fit' ? 'fit' : `${k}×` })));
    const pause = el('button', { textContent: 'pause' });
    const saveFits = el('button', { textContent: 'save FITS' });
    const savePng = el('button', { textContent: 'save PNG' });
    const info = el('div', { className: 'info' });
    const cursor = el('div', { className: 'info' });
    const card = el('div', { className: 'card' }, [
      el('h3', { textContent: name }, mirror ? [el('span', { className: 'tag', textContent: 'mirror' })] : []),
      canvas,
      el('div', { className: 'controls' }, [cmap, scale, lo, hi, zoom, pause, saveFits, savePng]),
      info, cursor,
    ]);
    const v = {
      kind: 'image', name, mirror, card, canvas, info, cursor, frame: null, shown: [],
      paused: false, min: 0, max: 0, problem: null,
    };
    const redraw = () => { if (v.frame) drawImage(v, v.frame); };
    cmap.onchange = redraw;
    scale.onchange = redraw;
    lo.oninput = redraw;
    hi.oninput = redraw;
    zoom.onchange = () => { sizeCanvas(v); };
    v.controls = { cmap, scale, lo, hi, zoom };
    streamButtons(v, pause, saveFits);
    savePng.onclick = () => {
      if (!v.frame) return;
      canvas.toBlob((blob) => download(blob, `${fileName(name)}-${v.frame.id}.png`));
    };
    canvas.onmousemove = (e) => {
      const f = v.frame;
      if (!f) return;
      const [h, w] = planeOf(f.dims);
      const x = Math.floor(e.offsetX / (canvas.clientWidth / w));
      const y = Math.floor(e.offsetY / (canvas.clientHeight / h));
      if (x < 0 || y < 0 || x >= w || y >= h) return;
      cursor.textContent = `x ${x}, y ${y}: ${num(f.data[y * w + x])}`;
    };
    canvas.onmouseleave = () => { cursor.textContent = ''; };
    return v;
  }

  // A view's pause (which stops asking for its frames) and FITS save (of the shown frame).
  function streamButtons(v, pause, saveFits) {
    pause.onclick = () => {
      v.paused = !v.paused;
      pause.textContent = v.paused ? 'resume' : 'pause';
      pause.classList.toggle('on', v.paused);
      subscribe();
    };
    saveFits.onclick = () => { if (v.frame) requestSave(v.name, v.frame.id); };
  }

  function planeOf(dims) {
    const n = dims.length;
    return [dims[n - 2], dims[n - 1]];
  }

  function sizeCanvas(v) {
    if (!v.frame) return;
    const [h, w] = planeOf(v.frame.dims);
    const z = v.controls.zoom.value;
    const k = z === 'fit' ? Math.max(1, Math.floor(384 / Math.max(w, h))) : +z;
    v.canvas.style.width = `${w * k}px`;
    v.canvas.style.height = `${h * k}px`;
  }

  function drawImage(v, f) {
    const [h, w] = planeOf(f.dims);
    const c = v.canvas;
    if (c.width !== w || c.height !== h) {
      c.width = w;
      c.height = h;
      v.image = null;
    }
    if (!v.image) {
      v.image = c.getContext('2d').createImageData(w, h);
      sizeCanvas(v);
    }
    const n = w * h;
    const data = f.data;
    let min = Infinity;
    let max = -Infinity;
    if (v.controls.scale.value === 'fixed' && v.controls.lo.value !== '' && v.controls.hi.value !== '') {
      min = +v.controls.lo.value;
      max = +v.controls.hi.value;
    } else {
      for (let i = 0; i < n; i++) {
        const x = data[i];
        if (x < min) min = x;
        if (x > max) max = x;
      }
      if (v.mirror) {
        const m = Math.max(Math.abs(min), Math.abs(max));
        min = -m;
        max = m;
      }
    }
    const table = COLORMAPS[v.controls.cmap.value];
    const span = max > min ? 255 / (max - min) : 0;
    const px = v.image.data;
    for (let i = 0; i < n; i++) {
      let k = Math.round((data[i] - min) * span);
      k = k > 255 ? 255 : (k >= 0 ? k : 0); // NaN lands on 0
      px[i * 4] = table[k * 3];
      px[i * 4 + 1] = table[k * 3 + 1];
      px[i * 4 + 2] = table[k * 3 + 2];
      px[i * 4 + 3] = 255;
    }
    c.getContext('2d').putImageData(v.image, 0, 0);
    v.min = min;
    v.max = max;
    c.dataset.frameId = String(f.id);
    c.dataset.min = String(min);
    c.dataset.max = String(max);
  }

  function plotView(name) {
    const canvas = el('canvas', { className: 'plot', width: 480, height: 170 });
    canvas.dataset.ring = name;
    const pause = el('button', { textContent: 'pause' });
    const saveFits = el('button', { textContent: 'save FITS' });
    const info = el('div', { className: 'info' });
    const card = el('div', { className: 'card' }, [
      el('h3', { textContent: name }), canvas,
      el('div', { className: 'controls' }, [pause, saveFits]), info,
    ]);
    const v = { kind: 'plot', name, card, canvas, info, frame: null, shown: [], paused: false, problem: null };
    streamButtons(v, pause, saveFits);
    return v;
  }

  // A line plot of ys (against xs, or their index) on a canvas, with its range written in.
  function drawLine(canvas, ys, xs, label) {
    const g = canvas.getContext('2d');
    const W = canvas.width;
    const H = canvas.height;
    g.clearRect(0, 0, W, H);
    if (ys.length === 0) return;
    let lo = Infinity;
    let hi = -Infinity;
    for (const y of ys) { if (y < lo) lo = y; if (y > hi) hi = y; }
    if (!(hi > lo)) { hi = lo + 1; lo -= 1; }
    const x0 = xs ? xs[0] : 0;
    const x1 = xs ? xs[xs.length - 1] : ys.length - 1;
    const sx = (W - 60) / Math.max(x1 - x0, 1e-9);
    const sy = (H - 24) / (hi - lo);
    g.strokeStyle = '#5aa9ff';
    g.lineWidth = 1.5;
    g.beginPath();
    for (let i = 0; i < ys.length; i++) {
      const x = 55 + ((xs ? xs[i] : i) - x0) * sx;
      const y = H - 12 - (ys[i] - lo) * sy;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    }
    g.stroke();
    g.fillStyle = '#8a939e';
    g.font = '11px system-ui, sans-serif';
    g.fillText(num(hi), 2, 14);
    g.fillText(num(lo), 2, H - 6);
    if (label) g.fillText(label, W - 4 - g.measureText(label).width, H - 2);
  }

  function onFrame(f) {
    const v = views.get(f.name);
    if (!v || v.paused) return;
    v.frame = f;
    if (v.kind === 'image') {
      drawImage(v, f);
    } else {
      drawLine(v.canvas, f.data, null, `${f.data.length} values`);
      v.canvas.dataset.frameId = String(f.id);
    }
    const now = performance.now();
    v.shown.push(now);
    while (v.shown.length && now - v.shown[0] > 2000) v.shown.shift();
    showInfo(v);
  }

  // Frames drawn per second over the last two seconds.
  function shownFps(v) {
    const now = performance.now();
    const recent = v.shown.filter((t) => now - t <= 2000);
    if (recent.length < 2) return 0;
    return (recent.length - 1) / ((recent[recent.length - 1] - recent[0]) / 1000);
  }

  function showInfo(v) {
    const f = v.frame;
    const parts = [];
    if (f) {
      parts.push(`frame ${f.id}`, `${f.elem} [${f.dims.join(', ')}]`, `ring ${f.rateHz.toFixed(1)} Hz`,
        `shown ${shownFps(v).toFixed(1)} /s`);
      if (v.kind === 'image') parts.push(`scale ${num(v.min)} … ${num(v.max)}`);
    } else {
      parts.push('waiting for a frame');
    }
    if (v.paused) parts.push('PAUSED');
    v.info.replaceChildren(parts.join(' · '));
    if (v.problem) v.info.append(el('div', { className: 'problem', textContent: v.problem }));
  }

  // ------------------------------------------------------------------ saving

  const pendingSaves = new Map();

  function fileName(ring) {
    return ring.replace(/[^A-Za-z0-9._-]+/g, '_');
  }

  function download(blob, name) {
    const a = el('a', { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  function requestSave(ring, id) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    ws.send(JSON.stringify({ save: ring, id }));
    return new Promise((resolve, reject) => pendingSaves.set(`${ring}#${id}`, { resolve, reject }));
  }

  function onSaved(buf) {
    const d = new DataView(buf);
    const nameLen = d.getUint16(4, true);
    const id = Number(d.getBigUint64(8, true));
    const ring = new TextDecoder().decode(new Uint8Array(buf, 16, nameLen));
    const fits = buf.slice(16 + Math.ceil(nameLen / 8) * 8);
    const key = `${ring}#${id}`;
    const pending = pendingSaves.get(key);
    pendingSaves.delete(key);
    if (pending && pending.quiet) {
      pending.resolve(fits);
      return;
    }
    download(new Blob([fits], { type: 'application/fits' }), `${fileName(ring)}-${id}.fits`);
    if (pending) pending.resolve(fits);
  }

  // ------------------------------------------------------------------ state

  function badge(node, text, cls) {
    node.textContent = text;
    node.className = `badge ${cls}`;
  }

  function onState(s) {
    lastState = s;
    $('segment').textContent = s.segment || '';
    if (s.error) {
      badge($('connection'), `segment unreadable: ${s.error}`, 'bad');
      return;
    }
    const i = s.inspection;
    badge($('connection'), i.creator_alive ? 'live' : 'creator DEAD', i.creator_alive ? 'ok' : 'bad');
    if (s.testbed) {
      const t = s.testbed.state;
      badge($('testbed'), `testbed ${t}`, t === 'running' ? 'ok' : (t === 'safety tripped' ? 'bad' : 'warn'));
    } else {
      $('testbed').className = 'badge hidden';
    }
    $('alarms').replaceChildren(...s.alarms.map((a) => el('span', {
      className: `badge ${a.set ? 'bad' : 'ok'}`, textContent: `${a.set ? 'ALARM ' : ''}${a.name}`,
    })));
    $('window').textContent = s.window_s ? `(last ${s.window_s.toFixed(1)} s)` : '';
    updateRings(i.objects, s);
    updateValues(i.objects);
    updateHistograms(s.histograms || {});
    updateTables(i, s);
    // A section with nothing in it (no plots, no histograms) is not shown.
    for (const id of ['images', 'plots', 'histograms']) {
      $(id).parentElement.classList.toggle('hidden', $(id).children.length === 0);
    }
  }

  function updateRings(objects, s) {
    const rings = objects.filter((o) => o.kind === 'frame_ring');
    let changed = false;
    for (const o of rings) {
      if (!views.has(o.name)) {
        // The format says its dimensions ("u16 [192, 192]"); the frames confirm them.
        const dims = (o.format.match(/\[(.*)\]/) || ['', ''])[1].split(',').map((x) => +x).filter((x) => x > 0);
        const v = kindOf(dims) === 'image' ? imageView(o.name, isMirror(o.name)) : plotView(o.name);
        views.set(o.name, v);
        (v.kind === 'image' ? $('images') : $('plots')).append(v.card);
        showInfo(v);
        changed = true;
      }
    }
    for (const [name, v] of views) {
      if (!rings.some((o) => o.name === name)) {
        v.card.remove();
        views.delete(name);
        changed = true;
      }
    }
    const problems = s.problems || {};
    for (const [name, v] of views) {
      const p = problems[name] ? `cannot read: ${problems[name]}` : null;
      if (p !== v.problem) {
        v.problem = p;
        showInfo(v);
      } else if (!v.paused && v.frame) {
        showInfo(v);
      }
    }
    if (changed) subscribe();
  }

  function updateValues(objects) {
    const now = Date.now() / 1000;
    for (const o of objects) {
      if (o.kind !== 'shared' || o.value === null || o.value === undefined) continue;
      // A name with a part starting with a dot is bookkeeping (dev/.owner), not a quantity.
      if (o.name.split('/').some((part) => part.startsWith('.'))) continue;
      let v = values.get(o.name);
      if (!v) {
        const canvas = el('canvas', { className: 'plot', width: 480, height: 140 });
        canvas.dataset.value = o.name;
        const info = el('div', { className: 'info' });
        const card = el('div', { className: 'card' }, [el('h3', { textContent: `${o.name} (${o.type_name})` }), canvas, info]);
        $('plots').append(card);
        v = { canvas, info, card, t: [], y: [] };
        values.set(o.name, v);
      }
      v.t.push(now);
      v.y.push(o.value);
      while (v.t.length && now - v.t[0] > 120) { v.t.shift(); v.y.shift(); }
      drawLine(v.canvas, v.y, v.t, 'last 2 min');
      v.info.textContent = `now ${num(o.value)}`;
    }
  }

  function updateHistograms(windows) {
    for (const [name, h] of Object.entries(windows)) {
      let v = histograms.get(name);
      if (!v) {
        const canvas = el('canvas', { className: 'plot', width: 360, height: 120 });
        canvas.dataset.histogram = name;
        const info = el('div', { className: 'info' });
        const card = el('div', { className: 'card' }, [el('h3', { textContent: name }), canvas, info]);
        $('histograms').append(card);
        v = { canvas, info };
        histograms.set(name, v);
      }
      v.info.textContent = h.count
        ? `${h.count} samples · p50 ${ns(h.p50)} · p99 ${ns(h.p99)} · p99.9 ${ns(h.p999)} · max ${ns(h.max)}`
        : 'no samples in the window';
      drawBuckets(v.canvas, h.buckets);
    }
  }

  // Buckets as bars on a logarithmic value axis.
  function drawBuckets(canvas, buckets) {
    const g = canvas.getContext('2d');
    const W = canvas.width;
    const H = canvas.height;
    g.clearRect(0, 0, W, H);
    if (!buckets.length) return;
    const lo = Math.log(Math.max(1, buckets[0][0]));
    const hi = Math.log(Math.max(2, buckets[buckets.length - 1][1]));
    const top = Math.max(...buckets.map((b) => b[2]));
    const x = (v) => 4 + (Math.log(Math.max(1, v)) - lo) / Math.max(hi - lo, 1e-9) * (W - 8);
    g.fillStyle = '#5aa9ff';
    for (const [a, b, n] of buckets) {
      const h = (n / top) * (H - 18);
      g.fillRect(x(a), H - 14 - h, Math.max(1, x(b) - x(a)), h);
    }
    g.fillStyle = '#8a939e';
    g.font = '11px system-ui, sans-serif';
    g.fillText(ns(buckets[0][0]), 2, H - 2);
    const right = ns(buckets[buckets.length - 1][1]);
    g.fillText(right, W - 2 - g.measureText(right).width, H - 2);
  }

  function row(cells, cls = []) {
    return el('tr', {}, cells.map((c, k) => el('td', { textContent: c, className: cls[k] || '' })));
  }

  function header(cells) {
    return el('tr', {}, cells.map((c) => el('th', { textContent: c })));
  }

  function updateTables(i, s) {
    const rates = s.rates || {};
    const rings = [header(['ring', 'format', 'rate', 'jitter', 'age', 'writer', 'readers', 'missed', 'held'])];
    const commands = [];
    for (const o of i.objects) {
      if (o.kind === 'frame_ring') {
        rings.push(row([o.name, o.format, `${(rates[o.name] ?? o.rate_hz).toFixed(1)} Hz`,
          `${o.jitter_us.toFixed(1)} µs`, o.age_ms === null ? '-' : `${o.age_ms.toFixed(1)} ms`,
          o.writer_pid === null ? '-' : `${o.writer_pid} ${o.writer_alive ? '' : 'DEAD'}`,
          o.readers.join(' '), String(o.overruns), String(o.held_slots)]));
      } else if (o.kind === 'command_ring') {
        commands.push(row([o.name, 'commands', `${(rates[o.name] ?? 0).toFixed(1)} /s`, '', '',
          o.server_pid === null ? '-' : `${o.server_pid} ${o.server_alive ? '' : 'DEAD'}`,
          `${o.queued} queued`, '', `${o.in_use}/${o.slots}`]));
      }
    }
    $('rings').replaceChildren(...rings, ...commands);
    $('devices').replaceChildren(
      header(['device', 'state', 'pid', 'starts', 'heartbeat', 'message']),
      ...i.devices.map((d) => row([d.name, d.state, d.pid === null ? '-' : String(d.pid), String(d.starts),
        d.heartbeat_age_s === null ? '-' : `${(d.heartbeat_age_s * 1000).toFixed(0)} ms ago`, d.message],
      ['', `state-${d.state}`])),
    );
    $('objects').replaceChildren(
      header(['object', 'kind', 'state']),
      ...i.objects.map((o) => row([o.name, o.kind.replace('_', ' '), summary(o)])),
    );
  }

  function summary(o) {
    switch (o.kind) {
      case 'mutex': return o.owner_pid === null ? (o.not_recoverable ? 'free, NOT RECOVERABLE' : 'free') : `held by ${o.owner_pid}`;
      case 'event': return o.set ? 'set' : 'clear';
      case 'histogram': return o.count ? `${o.count} samples, p99 ${ns(o.p99)}` : 'no samples';
      case 'barrier': return `${o.arrived}/${o.parties}${o.broken ? ', BROKEN' : ''}`;
      case 'shared': return `${o.type_name}${o.value === null ? '' : ` = ${num(o.value)}`}`;
      case 'dict': return `${o.entries}/${o.max_entries} keys`;
      case 'frame_ring': return `${o.format}, ${o.frames_written} frames`;
      case 'command_ring': return `${o.calls} calls`;
      case 'trace_buffer': return `${o.recorded} events`;
      case 'corrupt': return `CORRUPT: ${o.detail}`;
      default: return '';
    }
  }

  // ------------------------------------------------------------------ the socket

  function subscribe() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const rings = [...views.values()].filter((v) => !v.paused).map((v) => v.name);
    ws.send(JSON.stringify({ subscribe: rings, fps }));
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    ws = new WebSocket(`${scheme}://${location.host}/ws`);
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => { badge($('connection'), 'connected', 'ok'); subscribe(); };
    ws.onmessage = (e) => {
      if (typeof e.data === 'string') {
        const m = JSON.parse(e.data);
        if (m.type === 'state') onState(m);
        else if (m.type === 'error') console.warn('shmkit view:', m.message);
        return;
      }
      const magic = new TextDecoder().decode(new Uint8Array(e.data, 0, 4));
      if (magic === 'SKF1') {
        const f = parseFrame(e.data);
        if (f) onFrame(f);
      } else if (magic === 'SKS1') {
        onSaved(e.data);
      }
    };
    ws.onclose = () => {
      badge($('connection'), 'disconnected: retrying', 'bad');
      setTimeout(connect, 1000);
    };
  }

  $('fps').onchange = (e) => { fps = +e.target.value; subscribe(); };

  // For tests and scripts driving the page (a headless browser's WebDriver).
  window.shmkitView = {
    frameId: (ring) => { const v = views.get(ring); return v && v.frame ? v.frame.id : null; },
    shownFps: (ring) => { const v = views.get(ring); return v ? shownFps(v) : null; },
    // The FITS file of a shown frame, as the "save FITS" button gets it (without downloading).
    fits: (ring, id) => {
      const p = requestSave(ring, id);
      const entry = pendingSaves.get(`${ring}#${id}`);
      if (entry) entry.quiet = true;
      return p.then((buf) => {
        const bytes = new Uint8Array(buf);
        let text = '';
        for (let k = 0; k < bytes.length; k += 8192) {
          text += String.fromCharCode(...bytes.subarray(k, k + 8192));
        }
        return btoa(text);
      });
    },
    state: () => lastState,
  };

  connect();
})();
