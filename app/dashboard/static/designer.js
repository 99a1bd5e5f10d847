/* The workflow designer (/designer): plain JS, no build step.
 *
 * State is one object, {name, description, input_schema, steps: [{name, action, params, after,
 * when, x, y}]}; every change redraws the canvas (SVG: a box per step, an arrow per
 * predecessor), rebuilds the selected step's form from its block's params schema, and asks
 * the server to check the whole definition (debounced), showing each problem it names.
 * Saving and starting go through the dashboard's own routes with its CSRF token. */
(function () {
  "use strict";
  var root = document.getElementById("designer");
  if (!root) return;
  var SVG = "http://www.w3.org/2000/svg";
  var W = 150, H = 44;
  var actions = {};
  JSON.parse(document.getElementById("designer-actions").textContent).forEach(function (a) {
    actions[a.name] = a;
  });
  var state = { steps: [] };
  var selected = null, connecting = null, checkTimer = null, lastProblems = [];
  var $ = function (id) { return document.getElementById(id); };
  window.stepwiseDesigner = { state: state, checks: 0 };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function find(name) { return state.steps.find(function (s) { return s.name === name; }); }

  function inputSchema() {
    try { return JSON.parse($("input-schema").value); } catch (e) { return null; }
  }
  function definition() {
    return {
      name: $("wf-name").value.trim(),
      description: $("wf-description").value,
      input_schema: inputSchema(),
      steps: state.steps.map(function (s) {
        var out = { name: s.name, action: s.action, params: s.params, after: s.after };
        if (s.when) out.when = s.when;
        return out;
      })
    };
  }

  // -- the canvas -------------------------------------------------------------
  function draw() {
    var nodes = $("nodes"), edges = $("edges");
    nodes.textContent = ""; edges.textContent = "";
    var bad = {};
    lastProblems.forEach(function (p) {
      var m = /^steps\.([^.\[]+)/.exec(p.where); if (m) bad[m[1]] = true;
    });
    state.steps.forEach(function (s) {
      s.after.forEach(function (from) {
        var a = find(from); if (!a) return;
        var x1 = a.x + W, y1 = a.y + H / 2, x2 = s.x, y2 = s.y + H / 2, mid = (x1 + x2) / 2;
        edges.appendChild(svg("path", {
          "class": "edge", "data-from": from, "data-to": s.name,
          d: "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2
        }));
      });
    });
    state.steps.forEach(function (s) {
      var cls = "node" + (s === selected ? " selected" : "") + (bad[s.name] ? " invalid" : "") +
        (s === connecting ? " source" : "");
      var g = svg("g", { "class": cls, "data-step": s.name, transform: "translate(" + s.x + "," + s.y + ")" });
      g.appendChild(svg("rect", { width: W, height: H }));
      var t1 = svg("text", { x: 10, y: 18 }); t1.textContent = s.name;
      var t2 = svg("text", { x: 10, y: 34, "class": "kind" });
      t2.textContent = s.action + (s.when ? " · if" : "");
      g.appendChild(t1); g.appendChild(t2);
      g.addEventListener("mousedown", function (ev) { startDrag(ev, s); });
      g.addEventListener("click", function () { clicked(s); });
      nodes.appendChild(g);
    });
    var bottom = state.steps.reduce(function (m, s) { return Math.max(m, s.y + H + 30); }, 420);
    $("canvas").setAttribute("height", bottom);
  }

  var drag = null;
  function startDrag(ev, step) {
    drag = { step: step, x: ev.clientX, y: ev.clientY, ox: step.x, oy: step.y, moved: false };
  }
  document.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (drag.moved) {
      drag.step.x = Math.max(0, drag.ox + dx); drag.step.y = Math.max(0, drag.oy + dy); draw();
    }
  });
  document.addEventListener("mouseup", function () {
    if (drag && drag.moved) drag.step.dragged = true;
    setTimeout(function () { drag = null; }, 0);
  });

  function clicked(step) {
    if (drag && drag.moved) return;
    if (connecting && connecting !== step) {
      if (step.after.indexOf(connecting.name) < 0) step.after.push(connecting.name);
      connecting = null; selected = step; changed(); return;
    }
    connecting = null; selected = step; draw(); form();
  }

  function addStep(action) {
    var n = 1;
    while (find(action + "_" + n)) n += 1;
    var last = state.steps[state.steps.length - 1];
    var step = {
      name: action + "_" + n, action: action, params: {}, after: [], when: null,
      x: last ? last.x + W + 40 : 20, y: last ? last.y : 30
    };
    if (step.x + W > ($("canvas").clientWidth || 800)) { step.x = 20; step.y = (last ? last.y : 0) + H + 40; }
    state.steps.push(step); selected = step; changed();
  }

  // -- the step's form, from its block's params schema -------------------------
  function field(label, control) {
    var wrap = document.createDocumentFragment();
    wrap.appendChild(el("label", { "for": control.id }, label));
    wrap.appendChild(control);
    return wrap;
  }
  function form() {
    var f = $("step-form"); f.textContent = "";
    if (!selected) { f.appendChild(el("p", { "class": "muted" }, "No step selected.")); return; }
    var step = selected, schema = actions[step.action].params, props = schema.properties || {};
    var name = el("input", { id: "step-name", value: step.name });
    name.addEventListener("change", function () {
      var old = step.name, now = name.value.trim();
      if (!now || find(now)) { name.value = old; return; }
      step.name = now;
      state.steps.forEach(function (s) { s.after = s.after.map(function (a) { return a === old ? now : a; }); });
      changed();
    });
    f.appendChild(field("Step name (" + step.action + ")", name));
    Object.keys(props).forEach(function (key) {
      var p = props[key], control, id = "param-" + key, value = step.params[key];
      var required = (schema.required || []).indexOf(key) >= 0;
      if (p.enum) {
        control = el("select", { id: id });
        control.appendChild(el("option", { value: "" }, "—"));
        p.enum.forEach(function (v) { control.appendChild(el("option", { value: v }, v)); });
        control.value = value || "";
      } else if (p.type === "object") {
        control = el("textarea", { id: id, rows: 3, placeholder: "{}" });
        control.value = value === undefined ? "" : JSON.stringify(value);
      } else if (p.format === "textarea") {
        control = el("textarea", { id: id, rows: 3 }); control.value = value || "";
      } else {
        control = el("input", { id: id, type: p.type === "number" ? "number" : "text" });
        control.value = value === undefined ? "" : value;
      }
      control.setAttribute("data-param", key);
      control.addEventListener("input", function () { setParam(step, key, p, control.value); });
      control.addEventListener("change", function () { setParam(step, key, p, control.value); });
      f.appendChild(field(key + (required ? " *" : "") + " — " + (p.description || ""), control));
    });
    var others = state.steps.filter(function (s) { return s !== step; });
    if (others.length) {
      var set = el("fieldset"); set.appendChild(el("legend", {}, "After"));
      others.forEach(function (o) {
        var box = el("input", { type: "checkbox", id: "after-" + o.name });
        box.checked = step.after.indexOf(o.name) >= 0;
        box.addEventListener("change", function () {
          step.after = step.after.filter(function (a) { return a !== o.name; });
          if (box.checked) step.after.push(o.name);
          changed(true);
        });
        var label = el("label", { "for": box.id }); label.appendChild(box);
        label.appendChild(document.createTextNode(o.name)); set.appendChild(label);
      });
      f.appendChild(set);
    }
    var when = step.when || {}, op = ["equals", "not_equals", "exists"].find(function (o) { return o in when; }) || "equals";
    var path = el("input", { id: "when-path", placeholder: "steps.wait.timed_out", value: when.path || "" });
    var ops = el("select", { id: "when-op" });
    ["equals", "not_equals", "exists"].forEach(function (o) { ops.appendChild(el("option", { value: o }, o)); });
    ops.value = op;
    var val = el("input", { id: "when-value", placeholder: "true", value: when.path ? JSON.stringify(when[op]) : "" });
    function setWhen() {
      if (!path.value.trim()) { step.when = null; changed(true); return; }
      var v; try { v = JSON.parse(val.value); } catch (e) { v = val.value; }
      step.when = { path: path.value.trim() }; step.when[ops.value] = v; changed(true);
    }
    [path, ops, val].forEach(function (c) { c.addEventListener("change", setWhen); });
    f.appendChild(field("Run only when (path)", path));
    f.appendChild(field("is", ops));
    f.appendChild(field("value (JSON)", val));
  }
  function setParam(step, key, p, raw) {
    if (raw === "") { delete step.params[key]; }
    else if (p.type === "number") { step.params[key] = Number(raw); }
    else if (p.type === "object") { try { step.params[key] = JSON.parse(raw); } catch (e) { step.params[key] = raw; } }
    else { step.params[key] = raw; }
    changed(true);
  }

  // -- checking, saving, starting -------------------------------------------------
  function post(url, fields) {
    var body = new URLSearchParams({ csrf_token: root.dataset.csrf });
    Object.keys(fields).forEach(function (k) { body.append(k, fields[k]); });
    return fetch(url, { method: "POST", body: body, credentials: "same-origin" }).then(function (r) {
      return r.json().then(function (data) { return { status: r.status, data: data }; });
    });
  }
  function showProblems(problems) {
    lastProblems = problems; var box = $("problems"); box.textContent = "";
    if (!problems.length) { box.appendChild(el("p", { "class": "ok", id: "no-problems" }, "No problems: ready to save.")); }
    else {
      var list = el("ul");
      problems.forEach(function (p) {
        list.appendChild(el("li", { "data-where": p.where, "data-code": p.code }, p.where + ": " + p.message));
      });
      box.appendChild(list);
    }
    draw();
  }
  function check() {
    var def = definition();
    if (def.input_schema === null) {
      showProblems([{ where: "input_schema", code: "bad_json", message: "the input schema is not valid JSON" }]);
      return;
    }
    post(root.dataset.checkUrl, { definition: JSON.stringify(def) }).then(function (r) {
      window.stepwiseDesigner.checks += 1;
      showProblems(r.data.problems || []);
    });
  }
  function changed(keepForm) {
    draw(); if (!keepForm) form(); startForm();
    clearTimeout(checkTimer); checkTimer = setTimeout(check, 250);
  }

  function startForm() {
    var f = $("start-form"), schema = inputSchema() || {}, props = schema.properties || {};
    var kept = {};
    f.querySelectorAll("input").forEach(function (i) { kept[i.dataset.field] = i.value; });
    f.textContent = "";
    Object.keys(props).forEach(function (key) {
      var input = el("input", { id: "input-" + key, "data-field": key,
        type: props[key].type === "number" || props[key].type === "integer" ? "number" : "text" });
      input.value = kept[key] || "";
      f.appendChild(field(key + ((schema.required || []).indexOf(key) >= 0 ? " *" : ""), input));
    });
  }
  function startRun() {
    var schema = inputSchema() || {}, props = schema.properties || {}, input = {};
    $("start-form").querySelectorAll("input").forEach(function (i) {
      if (i.value === "") return;
      var t = (props[i.dataset.field] || {}).type;
      input[i.dataset.field] = (t === "number" || t === "integer") ? Number(i.value) : i.value;
    });
    post(root.dataset.startUrl, { name: $("wf-name").value.trim(), input: JSON.stringify(input) })
      .then(function (r) {
        if (r.data.url) { window.location.assign(r.data.url); return; }
        var box = $("start-errors"), list = el("ul"); box.textContent = "";
        Object.keys(r.data.errors || {}).forEach(function (k) {
          list.appendChild(el("li", {}, k + ": " + [].concat(r.data.errors[k]).join(" ")));
        });
        box.appendChild(list);
      });
  }
  function showVersions(items) {
    var list = $("versions"); list.textContent = "";
    items.forEach(function (v) {
      var li = el("li", { "data-version": v.version });
      var a = el("a", { href: "#" }, "version " + v.version + " · " + v.steps.length + " steps · " + v.created_at.slice(0, 19).replace("T", " "));
      a.addEventListener("click", function (ev) { ev.preventDefault(); load(v); });
      li.appendChild(a); list.appendChild(li);
    });
  }
  function load(def) {
    $("wf-name").value = def.name; $("wf-description").value = def.description || "";
    $("input-schema").value = JSON.stringify(def.input_schema);
    state.steps.length = 0; selected = null;
    def.steps.forEach(function (s, i) {
      state.steps.push({ name: s.name, action: s.action, params: s.params || {}, after: s.after || [],
        when: s.when || null, x: 20 + (i % 4) * (W + 40), y: 30 + Math.floor(i / 4) * (H + 40) });
    });
    changed();
  }
  function versionsOf(name, then) {
    fetch(root.dataset.versionsUrl.replace("__name__", encodeURIComponent(name)), { credentials: "same-origin" })
      .then(function (r) { return r.json(); }).then(function (d) { showVersions(d.items); if (then) then(d.items); });
  }
  function save() {
    var status = $("save-status");
    status.textContent = "Saving…";
    post(root.dataset.saveUrl, { definition: JSON.stringify(definition()) }).then(function (r) {
      if (r.status === 200) {
        status.textContent = "Saved version " + r.data.version + ".";
        showVersions(r.data.versions); showProblems([]);
      } else {
        status.textContent = "Not saved: fix the problems below.";
        showProblems(r.data.problems || []);
      }
    });
  }

  document.querySelectorAll("#palette .block").forEach(function (b) {
    b.addEventListener("click", function () { addStep(b.dataset.action); });
  });
  $("connect").addEventListener("click", function () { if (selected) { connecting = selected; draw(); } });
  $("remove-step").addEventListener("click", function () {
    if (!selected) return;
    var gone = selected.name;
    state.steps = state.steps.filter(function (s) { return s !== selected; });
    state.steps.forEach(function (s) { s.after = s.after.filter(function (a) { return a !== gone; }); });
    window.stepwiseDesigner.state = state; selected = null; changed();
  });
  $("save").addEventListener("click", save);
  $("start-run").addEventListener("click", startRun);
  ["wf-name", "wf-description", "input-schema"].forEach(function (id) {
    $(id).addEventListener("input", function () { changed(true); });
  });
  $("open-definition").addEventListener("change", function (ev) {
    if (ev.target.value) versionsOf(ev.target.value, function (items) { if (items.length) load(items[0]); });
  });
  startForm(); draw();
  if (root.dataset.open) {
    $("open-definition").value = root.dataset.open;
    versionsOf(root.dataset.open, function (items) { if (items.length) load(items[0]); });
  }
})();
