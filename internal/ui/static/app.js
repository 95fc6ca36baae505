// app.js: the modgate web UI. One page, hash routes (#/modules,
// #/module/<path>, #/stats, #/audit, #/policy, #/health), each drawn from
// the admin API under /admin/v1/. A module's page also fixes entries
// through it: refresh the module's list and @latest, purge a version.
//
// Rules this file keeps:
//   - everything from the API goes into the page as text (el() appends
//     strings as text nodes; no string is ever parsed as HTML), so a
//     module path, an audit field or a policy reason never becomes markup;
//   - the admin token lives in sessionStorage (this tab only), goes out
//     only in the Authorization header of requests to this same server,
//     and fetch never sends or prompts for other credentials;
//   - a 401 or 403 from the API shows the sign-in form with the server's
//     one-line message.
"use strict";

(function () {
  const TOKEN_KEY = "modgate.adminToken";

  const view = document.getElementById("view");
  const login = document.getElementById("login");
  const loginForm = document.getElementById("login-form");
  const loginError = document.getElementById("login-error");
  const tokenInput = document.getElementById("token");
  const logout = document.getElementById("logout");
  const nav = document.getElementById("nav");

  // ---- The API ----

  class AuthError extends Error {}

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api sends a request to an admin API path (GET, or the method given:
  // the writes, POST and DELETE, carry no body, the path says what they
  // act on) and returns its JSON, or throws AuthError (401, 403) or
  // APIError with the server's one-line message. For a write the browser
  // adds Origin and Sec-Fetch-Site, by which the server's guard refuses
  // the same request sent by another site.
  async function api(path, method) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    // credentials "omit": no cookies or cached basic-auth sent, and no
    // browser password prompt for the server's Basic challenge.
    const resp = await fetch(path, { method: method || "GET", headers: headers, credentials: "omit", cache: "no-store", redirect: "error" });
    if (resp.status === 401 || resp.status === 403) {
      throw new AuthError(await errorLine(resp));
    }
    if (!resp.ok) {
      throw new APIError(resp.status, await errorLine(resp));
    }
    return resp.json();
  }

  // errorLine is the first line of an error answer, bounded.
  async function errorLine(resp) {
    let text = "";
    try {
      text = (await resp.text()).trim().split("\n")[0].slice(0, 500);
    } catch (e) {
      // the body could not be read: the status says enough
    }
    return text || "HTTP " + resp.status;
  }

  // settled turns a failed request that is not about authentication into
  // its error value, so that one missing part does not hide a page.
  function settled(promise) {
    return promise.catch(function (err) {
      if (err instanceof AuthError) {
        throw err;
      }
      return err instanceof Error ? err : new Error(String(err));
    });
  }

  // ---- DOM helpers ----

  // el makes an element. props are attributes (class, href, ...; "on*"
  // are event listeners); children are nodes or strings, added as text.
  function el(tag, props) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) {
        continue;
      }
      if (k.startsWith("on")) {
        e.addEventListener(k.slice(2), v);
      } else {
        e.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (let i = 2; i < arguments.length; i++) {
      appendAll(e, arguments[i]);
    }
    return e;
  }

  function appendAll(parent, c) {
    if (c === null || c === undefined || c === false) {
      return;
    }
    if (Array.isArray(c)) {
      c.forEach(function (x) {
        appendAll(parent, x);
      });
      return;
    }
    parent.append(c instanceof Node ? c : String(c));
  }

  // table makes a scrolling table: columns are [title, className?], rows
  // arrays of cells (nodes or strings).
  function table(columns, rows) {
    const head = el("tr", null, columns.map(function (c) {
      return el("th", { class: c[1] || null, scope: "col" }, c[0]);
    }));
    // data-label names each cell's column where phones stack the cells
    // of a row (style.css).
    const body = rows.map(function (r) {
      return el("tr", null, r.map(function (cell, i) {
        return el("td", { class: columns[i][1] || null, "data-label": columns[i][0] }, el("span", null, cell));
      }));
    });
    return el("div", { class: "table-wrap" }, el("table", null, el("thead", null, head), el("tbody", null, body)));
  }

  function badge(text, kind) {
    return el("span", { class: "badge " + (kind || "") }, text);
  }

  function card(title, value, sub) {
    return el("div", { class: "card" }, el("h3", null, title), el("div", { class: "value" }, value), sub ? el("div", { class: "sub" }, sub) : null);
  }

  function link(href, text) {
    return el("a", { href: href }, text);
  }

  function hashLink(page, params) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v) {
        qs.set(k, v);
      }
    }
    const s = qs.toString();
    return "#/" + page + (s ? "?" + s : "");
  }

  function moduleHref(path) {
    return "#/module/" + encodeURIComponent(path);
  }

  // proxyEscape writes a module path or version as the GOPROXY protocol
  // does (module.EscapePath): a capital letter becomes "!" and its lower
  // case, so that case-insensitive file systems keep them apart. The admin
  // API takes them in that form.
  function proxyEscape(s) {
    return s.replace(/[A-Z]/g, function (c) {
      return "!" + c.toLowerCase();
    });
  }

  // proxyPathURL is an escaped module path for a URL, each element
  // percent-encoded (the server decodes them before unescaping).
  function proxyPathURL(path) {
    return proxyEscape(path).split("/").map(encodeURIComponent).join("/");
  }

  // ---- Formatting ----

  const nf = new Intl.NumberFormat("en");

  function fmtNum(n) {
    return n === null || n === undefined ? "—" : nf.format(Math.round(n));
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) {
      return "—";
    }
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  function plural(n, word) {
    return fmtNum(n) + " " + word + (n === 1 ? "" : "s");
  }

  function fmtCompact(n) {
    if (Math.abs(n) >= 1e9) {
      return +(n / 1e9).toFixed(1) + "G";
    }
    if (Math.abs(n) >= 1e6) {
      return +(n / 1e6).toFixed(1) + "M";
    }
    if (Math.abs(n) >= 1e3) {
      return +(n / 1e3).toFixed(1) + "k";
    }
    return String(+n.toFixed(2));
  }

  function fmtPercent(r) {
    return r === null || r === undefined ? "—" : (r * 100).toFixed(1) + " %";
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // fmtTime shows an RFC 3339 time in local time, to the second.
  function fmtTime(iso) {
    if (!iso) {
      return "—";
    }
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) {
      return String(iso);
    }
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function timeCell(iso) {
    return iso ? el("time", { datetime: iso, title: iso }, fmtTime(iso)) : "—";
  }

  function ago(iso) {
    if (!iso) {
      return "never";
    }
    const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 60) {
      return "just now";
    }
    if (s < 3600) {
      return Math.round(s / 60) + " min ago";
    }
    if (s < 86400) {
      return Math.round(s / 3600) + " h ago";
    }
    return Math.round(s / 86400) + " days ago";
  }

  // localInput and fromLocalInput convert between RFC 3339 and the value
  // of an <input type="datetime-local"> (local time, no zone).
  function localInput(iso) {
    const d = new Date(iso);
    if (!iso || Number.isNaN(d.getTime())) {
      return "";
    }
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function fromLocalInput(v) {
    if (!v) {
      return "";
    }
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? "" : d.toISOString().replace(/\.\d+Z$/, "Z");
  }

  // compareSemver orders module versions as semantic versions (the store
  // lists them in the lexical order of their escaped form).
  function compareSemver(a, b) {
    const pa = parseSemver(a);
    const pb = parseSemver(b);
    if (!pa || !pb) {
      return a < b ? -1 : a > b ? 1 : 0;
    }
    for (let i = 0; i < 3; i++) {
      if (pa.nums[i] !== pb.nums[i]) {
        return pa.nums[i] < pb.nums[i] ? -1 : 1;
      }
    }
    if (pa.pre.length === 0 || pb.pre.length === 0) {
      return pb.pre.length - pa.pre.length === 0 ? 0 : pa.pre.length === 0 ? 1 : -1;
    }
    for (let i = 0; i < Math.min(pa.pre.length, pb.pre.length); i++) {
      const x = pa.pre[i];
      const y = pb.pre[i];
      if (x === y) {
        continue;
      }
      const xn = /^\d+$/.test(x);
      const yn = /^\d+$/.test(y);
      if (xn && yn) {
        return x.length !== y.length ? x.length - y.length : x < y ? -1 : 1;
      }
      if (xn !== yn) {
        return xn ? -1 : 1;
      }
      return x < y ? -1 : 1;
    }
    return pa.pre.length - pb.pre.length;
  }

  function parseSemver(v) {
    const m = /^v(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(v);
    if (!m) {
      return null;
    }
    return { nums: [BigInt(m[1]), BigInt(m[2]), BigInt(m[3])], pre: m[4] ? m[4].split(".") : [] };
  }

  // ---- Sign-in ----

  function showLogin(message, isError) {
    view.hidden = true;
    view.dataset.state = "login";
    nav.hidden = true;
    logout.hidden = true;
    login.hidden = false;
    loginError.textContent = message || "";
    loginError.className = isError ? "error" : "note";
    loginError.hidden = !message;
    tokenInput.focus();
  }

  loginForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const token = tokenInput.value.trim();
    // A header value must be visible ASCII: anything else is no token
    // modgate made, and fetch would refuse it.
    if (!/^[\x21-\x7e]+$/.test(token)) {
      showLogin("A token is one word of visible characters, as modgate token add printed it.", true);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    tokenInput.value = "";
    login.hidden = true;
    view.hidden = false;
    nav.hidden = false;
    route();
  });

  // signInAgain forgets a token the server refused and shows why; with
  // no token sent, the form is a request for one rather than an error.
  function signInAgain(err) {
    const sent = sessionStorage.getItem(TOKEN_KEY) !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(err.message, sent);
  }

  logout.addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("Signed out.", false);
  });

  // ---- Routing ----

  let generation = 0;
  let charts = []; // redraw functions of the current page's charts

  function parseHash() {
    const h = location.hash.replace(/^#\/?/, "");
    const q = h.indexOf("?");
    const path = q < 0 ? h : h.slice(0, q);
    const params = new URLSearchParams(q < 0 ? "" : h.slice(q + 1));
    const slash = path.indexOf("/");
    const name = slash < 0 ? path : path.slice(0, slash);
    let arg = "";
    if (slash >= 0) {
      try {
        arg = decodeURIComponent(path.slice(slash + 1));
      } catch (e) {
        arg = "";
      }
    }
    return { name: pages[name] ? name : "modules", arg: arg, params: params };
  }

  async function route() {
    const r = parseHash();
    const gen = ++generation;
    charts = [];
    for (const a of nav.querySelectorAll("a")) {
      const active = a.dataset.page === r.name || (r.name === "module" && a.dataset.page === "modules");
      a.classList.toggle("active", active);
      if (active) {
        a.setAttribute("aria-current", "page");
      } else {
        a.removeAttribute("aria-current");
      }
    }
    logout.hidden = !sessionStorage.getItem(TOKEN_KEY);
    // data-page, data-route and data-state say what the view shows and
    // whether it is drawn: for people's tools and the browser tests.
    view.dataset.page = r.name;
    view.dataset.route = location.hash;
    view.dataset.state = "loading";
    const ctx = {
      arg: r.arg,
      params: r.params,
      stale: function () {
        return gen !== generation;
      },
      show: function (node) {
        view.replaceChildren(node);
      },
      chart: function (draw) {
        charts.push(draw);
        draw();
      },
    };
    try {
      await pages[r.name](ctx);
      if (!ctx.stale()) {
        view.dataset.state = "ready";
      }
    } catch (err) {
      if (ctx.stale()) {
        return;
      }
      if (err instanceof AuthError) {
        signInAgain(err);
        return;
      }
      view.replaceChildren(el("div", { class: "banner bad", role: "alert" }, err.message || String(err)));
      view.dataset.state = "error";
    }
  }

  let resizeTimer = 0;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      charts.forEach(function (draw) {
        draw();
      });
    }, 150);
  });

  // chartBox makes a titled chart container; draw(plot) fills it once it
  // is in the page (charts take the width they are given).
  function chartBox(title, legend) {
    const plot = el("div", { class: "plot" });
    const box = el("figure", { class: "chart" }, el("h3", null, title), plot);
    if (legend && legend.length > 1) {
      box.append(el("div", { class: "legend" }, legend.map(function (name, i) {
        return el("span", null, el("span", { class: "swatch k" + (i % 4) }), name);
      })));
    }
    return { box: box, plot: plot };
  }

  // ---- Pages ----

  const pages = {
    modules: pageModules,
    module: pageModule,
    stats: pageStats,
    audit: pageAudit,
    policy: pagePolicy,
    health: pageHealth,
  };

  async function pageModules(ctx) {
    const q = ctx.params.get("q") || "";
    const after = ctx.params.get("after") || "";
    const qs = new URLSearchParams({ limit: "100" });
    if (q) {
      qs.set("q", q);
    }
    if (after) {
      qs.set("after", after);
    }
    const list = await api("/admin/v1/modules?" + qs);
    if (ctx.stale()) {
      return;
    }
    const input = el("input", { type: "search", name: "q", value: q, placeholder: "part of a module path", "aria-label": "Search modules" });
    const form = el("form", {
      class: "filters",
      role: "search",
      onsubmit: function (ev) {
        ev.preventDefault();
        location.hash = hashLink("modules", { q: input.value.trim() });
      },
    }, input, el("button", { type: "submit" }, "Search"));

    let content;
    if (list.modules.length === 0) {
      content = el("p", { class: "note" }, q ? "No stored module path contains “" + q + "”." : "Nothing is stored yet.");
    } else {
      content = table(
        [["Module"], ["Versions", "num"], ["Size", "num"], ["Last fetched", "nowrap"]],
        list.modules.map(function (m) {
          let size = 0;
          let fetched = "";
          for (const v of m.versions) {
            size += v.size || 0;
            if (v.fetched && v.fetched > fetched) {
              fetched = v.fetched;
            }
          }
          return [el("a", { href: moduleHref(m.path), class: "module-link" }, m.path), fmtNum(m.versions.length), fmtBytes(size), timeCell(fetched)];
        }),
      );
    }
    const pager = el("div", { class: "pager" },
      after ? link(hashLink("modules", { q: q }), "← First page") : null,
      list.next ? link(hashLink("modules", { q: q, after: list.next }), "Next page →") : null);
    ctx.show(el("div", null, el("h1", null, "Modules"), form, content, pager));
  }

  // pageModule shows a module's stored versions, and the two fixes an
  // operator makes there: refreshing its list and @latest, and purging a
  // version. The header and the status line stay while the versions are
  // redrawn after each change, so the outcome stays in view.
  async function pageModule(ctx) {
    const path = ctx.arg;
    const mod = await storedModule(path);
    if (ctx.stale()) {
      return;
    }
    const page = {
      ctx: ctx,
      path: path,
      status: el("p", { id: "module-status", class: "status", role: "status", "aria-live": "polite", tabindex: "-1" }),
      body: el("div"),
    };
    const refresh = el("button", { type: "button", id: "refresh", onclick: function () {
      refreshModule(page);
    } }, "Refresh list and @latest");
    page.root = el("div", null,
      el("p", null, link("#/modules", "← Modules")),
      el("h1", { class: "mono" }, path),
      el("div", { class: "actions" }, refresh, el("span", { class: "note" }, "Asks the source now, whatever --list-ttl says.")),
      page.status,
      page.body,
      el("p", null, link(hashLink("audit", { module: path }), "Audit events of this module →")));
    page.body.replaceChildren(moduleBody(page, mod));
    ctx.show(page.root);
  }

  // storedModule is one module as the API lists what is stored, or null.
  async function storedModule(path) {
    // path= asks for this one module: modgate reads its keys alone.
    const list = await api("/admin/v1/modules?" + new URLSearchParams({ path: path }));
    return list.modules.find(function (m) {
      return m.path === path;
    }) || null;
  }

  // moduleBody is the cards and the versions table of mod, newest first.
  function moduleBody(page, mod) {
    if (!mod || mod.versions.length === 0) {
      return el("p", { class: "note" }, "modgate stores no version of this module.");
    }
    const versions = mod.versions.slice().sort(function (a, b) {
      return compareSemver(b.version, a.version);
    });
    let size = 0;
    let downloads = null;
    for (const v of versions) {
      size += v.size || 0;
      if (typeof v.downloads === "number") {
        downloads = (downloads || 0) + v.downloads;
      }
    }
    // Each version's Purge sits under it, in the first column: a wide
    // table scrolls in its box, and this column is always in view.
    const rows = versions.map(function (v) {
      return [
        [el("span", { class: "mono" }, v.version), purgeControl(page, v.version)],
        timeCell(v.time),
        timeCell(v.fetched),
        v.origin || "—",
        fmtBytes(v.size),
        (v.files || []).join(", "),
        typeof v.downloads === "number" ? fmtNum(v.downloads) : "—",
        timeCell(v.last_access),
        v.h1 || "—",
      ];
    });
    return el("div", null,
      el("div", { class: "cards" },
        card("Versions stored", fmtNum(versions.length)),
        card("Size", fmtBytes(size)),
        card("Downloads", downloads === null ? "—" : fmtNum(downloads))),
      table([["Version", "nowrap"], ["Published", "nowrap"], ["Fetched", "nowrap"], ["From"], ["Size", "num"], ["Files"], ["Downloads", "num"], ["Last access", "nowrap"], ["h1", "hash"]], rows));
  }

  // purgeControl is a version row's Purge button. A click turns it into a
  // question in the row (not window.confirm, which blocks the page):
  // Confirm purges, Cancel or Escape takes the question back. Focus
  // follows, so that the keyboard can do it all.
  function purgeControl(page, version) {
    const box = el("span", { class: "purge", "data-version": version });
    const start = el("button", { type: "button", class: "quiet", "aria-label": "Purge " + version, onclick: ask }, "Purge");
    function ask() {
      const cancel = el("button", { type: "button", class: "quiet", onclick: back }, "Cancel");
      box.replaceChildren(
        el("span", { class: "question" }, "Purge " + version + "?"),
        el("button", { type: "button", class: "danger", onclick: function () {
          purgeVersion(page, version);
        } }, "Confirm"),
        cancel);
      cancel.focus(); // the safe choice first
    }
    function back() {
      box.replaceChildren(start);
      start.focus();
    }
    box.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && !box.contains(start)) {
        back();
      }
    });
    box.append(start);
    return box;
  }

  // refreshModule has modgate ask the source for the module's list and
  // @latest now, and says what they are.
  function refreshModule(page) {
    write(page, "Asking the source about " + page.path + "…", async function () {
      const r = await api("/admin/v1/refresh/" + proxyPathURL(page.path), "POST");
      const n = (r.versions || []).length;
      // A source that fails is a 502 with the server's line (clients
      // keep getting the list kept before), shown as an error.
      return "Refreshed " + r.module + ": the source lists " + (n ? plural(n, "version") : "no tagged version") +
        (r.latest ? ", @latest is " + r.latest : ", and no @latest") + ".";
    });
  }

  // purgeVersion removes a stored version's files and says how many.
  function purgeVersion(page, version) {
    write(page, "Purging " + page.path + "@" + version + "…", async function () {
      const r = await api("/admin/v1/modules/" + proxyPathURL(page.path) + "/@v/" + encodeURIComponent(proxyEscape(version)), "DELETE");
      // A version gone already (another operator, retention) is no
      // error: the server answers that it removed no file.
      return r.files > 0
        ? "Purged " + r.module + "@" + r.version + " (" + plural(r.files, "file") + "): it is fetched again on its next request."
        : r.module + "@" + r.version + " was not stored any more: nothing to purge.";
    });
  }

  // write runs one change through the admin API for a module's page.
  // Every button of the page is disabled until it is answered (one change
  // at a time, no double submit). Then the versions are read again, so
  // the page shows what is stored now, and the outcome, work's message or
  // the server's line, goes to the status line, which takes the focus
  // (the button pressed may be gone by then).
  async function write(page, pending, work) {
    setStatus(page.status, "busy", pending);
    setBusy(page.root, true);
    try {
      let msg = await work();
      const mod = await settled(storedModule(page.path));
      if (mod instanceof Error) {
        msg += " The versions could not be read again: " + mod.message;
      } else if (!page.ctx.stale()) {
        page.body.replaceChildren(moduleBody(page, mod));
      }
      setStatus(page.status, "ok", msg);
    } catch (err) {
      if (page.ctx.stale()) {
        return;
      }
      if (err instanceof AuthError) {
        signInAgain(err);
        return;
      }
      setStatus(page.status, "error", err.message || String(err));
    } finally {
      setBusy(page.root, false);
    }
    if (!page.ctx.stale()) {
      page.status.focus();
    }
  }

  // setStatus shows text in a status line; data-result (busy, ok, error)
  // says which, for the style and for tests.
  function setStatus(node, result, text) {
    node.dataset.result = result;
    node.className = "status " + result;
    node.textContent = text;
  }

  function setBusy(root, busy) {
    root.setAttribute("aria-busy", String(busy));
    for (const b of root.querySelectorAll("button")) {
      b.disabled = busy;
    }
  }

  async function pageStats(ctx) {
    const range = ctx.params.get("range") === "days" ? "days" : "hours";
    const results = await Promise.all([api("/admin/v1/stats"), settled(api("/admin/v1/history?range=" + range))]);
    if (ctx.stale()) {
      return;
    }
    const stats = results[0];
    const hist = results[1];

    const up = stats.upstream_fetches || {};
    const upTotal = Object.values(up).reduce(function (a, b) {
      return a + b;
    }, 0);
    const upErrors = (up.error || 0) + (up.invalid || 0);
    const cards = el("div", { class: "cards" },
      card("Requests", fmtNum(stats.requests.total), "since this process started"),
      card("Hit ratio", fmtPercent(stats.cache.hit_ratio), "answered from storage"),
      card("Bytes served", fmtBytes(stats.requests.bytes_served)),
      card("Stored", plural(stats.store.modules, "module"), plural(stats.store.versions, "version") + ", " + fmtBytes(stats.store.bytes)),
      card("Upstream fetches", fmtNum(upTotal), fmtNum(upErrors) + " failed"));

    const tabs = el("div", { class: "tabs", role: "tablist" },
      el("a", { href: hashLink("stats", { range: "hours" }), class: range === "hours" ? "active" : null }, "Hours"),
      el("a", { href: hashLink("stats", { range: "days" }), class: range === "days" ? "active" : null }, "Days"));

    const histGrid = el("div", { class: "charts", id: "history-charts" });
    const sinceGrid = el("div", { class: "charts", id: "since-start-charts" });
    const root = el("div", null, el("h1", null, "Stats"), cards, el("h2", null, "Over time"), tabs);
    let histNote = null;
    if (hist instanceof Error) {
      histNote = el("div", { class: "banner warn" }, "History is not available: " + hist.message);
    } else {
      const first = hist.buckets.length ? hist.buckets[0].t : null;
      const last = hist.buckets.length ? hist.buckets[hist.buckets.length - 1].t : null;
      histNote = el("p", { class: "note" }, hist.buckets.length
        ? "From " + fmtTime(first) + " to " + fmtTime(last) + (hist.step ? ", one point every " + hist.step : "") + "."
        : "No samples yet: modgate records one every few minutes.");
    }
    root.append(histNote, histGrid, el("h2", null, "Since this process started"), sinceGrid);
    ctx.show(root);

    if (!(hist instanceof Error)) {
      drawHistory(ctx, histGrid, hist, range);
    }
    drawSinceStart(ctx, sinceGrid, stats);
  }

  // drawHistory draws the time series of GET /admin/v1/history. A field a
  // bucket lacks is a gap, and a series no bucket has is left out.
  function drawHistory(ctx, grid, hist, range) {
    const buckets = hist.buckets || [];
    const labels = buckets.map(function (b) {
      const d = new Date(b.t);
      return range === "days" ? pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + "h" : pad(d.getHours()) + ":" + pad(d.getMinutes());
    });
    const field = function (name) {
      return buckets.map(function (b) {
        return typeof b[name] === "number" ? b[name] : null;
      });
    };
    const has = function (name) {
      return buckets.length === 0 || buckets.some(function (b) {
        return typeof b[name] === "number";
      });
    };
    const series = function (pairs) {
      return pairs.filter(function (p) {
        return has(p[1]);
      }).map(function (p) {
        return { name: p[0], values: field(p[1]) };
      });
    };

    const lineChart = function (title, s, opts) {
      if (s.length === 0) {
        return;
      }
      const c = chartBox(title, s.map(function (x) {
        return x.name;
      }));
      grid.append(c.box);
      ctx.chart(function () {
        Charts.line(c.plot, Object.assign({ labels: labels, series: s, format: fmtCompact, label: title, integer: true }, opts || {}));
      });
    };

    lineChart("Requests", series([["requests", "requests"], ["downloads", "downloads"], ["errors", "errors"]]));
    if (has("hits") && has("misses")) {
      const ratio = buckets.map(function (b) {
        const total = (b.hits || 0) + (b.misses || 0);
        return total > 0 ? (100 * (b.hits || 0)) / total : null;
      });
      lineChart("Hit ratio", [{ name: "hit ratio", values: ratio }], {
        max: 100,
        integer: false,
        format: function (v) {
          return Math.round(v) + "%";
        },
      });
    }
    if (has("bytes")) {
      const c = chartBox("Bytes served");
      grid.append(c.box);
      ctx.chart(function () {
        Charts.bars(c.plot, { labels: labels, series: { name: "bytes", values: field("bytes") }, format: fmtBytesShort, label: "Bytes served", integer: true });
      });
    }
    lineChart("Upstream fetches and errors", series([["fetches", "upstream_fetches"], ["errors", "upstream_errors"]]));
    if (Array.isArray(hist.top_modules)) {
      const c = chartBox("Top modules (downloads)");
      grid.append(c.box);
      const items = hist.top_modules.map(function (m) {
        return { label: m.module, value: m.downloads || 0, href: moduleHref(m.module) };
      });
      ctx.chart(function () {
        Charts.hbars(c.plot, { items: items, format: fmtCompact, label: "Top modules", emptyText: "no downloads yet" });
      });
    }
  }

  function fmtBytesShort(n) {
    return fmtBytes(n).replace(" ", "");
  }

  // drawSinceStart draws the process's counters from GET /admin/v1/stats.
  function drawSinceStart(ctx, grid, stats) {
    const sorted = function (obj) {
      return Object.entries(obj || {}).map(function (e) {
        return { label: e[0], value: e[1] };
      }).sort(function (a, b) {
        return b.value - a.value;
      });
    };
    const byEndpoint = {};
    for (const [ep, codes] of Object.entries(stats.requests.by_endpoint || {})) {
      byEndpoint[ep] = Object.values(codes).reduce(function (a, b) {
        return a + b;
      }, 0);
    }
    const specs = [
      ["Requests by endpoint", sorted(byEndpoint), 0],
      ["Cache lookups by result", sorted(stats.cache.by_result), 2],
      ["Upstream fetches by outcome", sorted(stats.upstream_fetches), 1],
    ];
    specs.forEach(function (c) {
      const box = chartBox(c[0]);
      grid.append(box.box);
      ctx.chart(function () {
        Charts.hbars(box.plot, { items: c[1], format: fmtCompact, color: c[2], label: c[0] });
      });
    });
  }

  async function pageAudit(ctx) {
    const f = {};
    for (const k of ["module", "principal", "decision", "since", "until", "limit"]) {
      f[k] = ctx.params.get(k) || "";
    }
    if (!f.limit) {
      f.limit = "200";
    }
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) {
      if (v) {
        qs.set(k, v);
      }
    }
    const events = await settled(api("/admin/v1/audit?" + qs));
    if (ctx.stale()) {
      return;
    }

    const inputs = {
      module: el("input", { type: "text", name: "module", value: f.module, placeholder: "example.com/m" }),
      principal: el("input", { type: "text", name: "principal", value: f.principal, placeholder: "token name" }),
      decision: el("select", { name: "decision" }, ["", "allow", "deny", "would-deny"].map(function (d) {
        return el("option", { value: d, selected: d === f.decision }, d || "any");
      })),
      since: el("input", { type: "datetime-local", name: "since", value: localInput(f.since) }),
      until: el("input", { type: "datetime-local", name: "until", value: localInput(f.until) }),
      limit: el("select", { name: "limit" }, ["100", "200", "1000"].map(function (n) {
        return el("option", { value: n, selected: n === f.limit }, n);
      })),
    };
    const label = function (text, input) {
      return el("label", null, text, input);
    };
    const form = el("form", {
      class: "filters",
      onsubmit: function (ev) {
        ev.preventDefault();
        location.hash = hashLink("audit", {
          module: inputs.module.value.trim(),
          principal: inputs.principal.value.trim(),
          decision: inputs.decision.value,
          since: fromLocalInput(inputs.since.value),
          until: fromLocalInput(inputs.until.value),
          limit: inputs.limit.value,
        });
      },
    },
    label("Module", inputs.module), label("Principal", inputs.principal), label("Decision", inputs.decision),
    label("Since", inputs.since), label("Until", inputs.until), label("At most", inputs.limit),
    el("button", { type: "submit" }, "Filter"),
    link("#/audit", "Clear"));

    let content;
    if (events instanceof Error) {
      content = el("div", { class: "banner warn" }, events.message);
    } else if (events.length === 0) {
      content = el("p", { class: "note" }, "No event matches.");
    } else {
      const decisionKind = { allow: "ok", deny: "bad", "would-deny": "warn" };
      const filterLink = function (key, value) {
        const p = Object.assign({}, f);
        p[key] = value;
        return link(hashLink("audit", p), value);
      };
      content = [
        el("p", { class: "note" }, fmtNum(events.length) + " events, newest first" + (String(events.length) === f.limit ? " (the newest " + f.limit + "; narrow the filters to see older ones)" : "") + "."),
        table(
          [["Time", "nowrap"], ["Decision"], ["Principal"], ["Client", "nowrap"], ["Module", "path"], ["Version", "nowrap"], ["File"], ["Source"], ["Rule"], ["Bytes", "num"], ["h1", "hash"]],
          events.map(function (e) {
            return [
              timeCell(e.time),
              badge(e.decision, decisionKind[e.decision]),
              e.principal ? filterLink("principal", e.principal) : "—",
              e.client || "—",
              e.module ? filterLink("module", e.module) : "—",
              e.version || "—",
              e.file || "—",
              e.source || "—",
              e.rule || "—",
              e.bytes ? fmtBytes(e.bytes) : "—",
              e.h1 || "—",
            ];
          }),
        ),
      ];
    }
    ctx.show(el("div", null, el("h1", null, "Audit log"), form, content));
  }

  async function pagePolicy(ctx) {
    const v = await settled(api("/admin/v1/policy"));
    if (ctx.stale()) {
      return;
    }
    if (v instanceof Error) {
      ctx.show(el("div", null, el("h1", null, "Policy"), el("div", { class: "banner warn" }, v.message)));
      return;
    }
    const rules = v.rules;
    const blocked = v.blocked;
    const auditDecision = v.dry_run ? "would-deny" : "deny";
    const root = el("div", null,
      el("h1", null, "Policy"),
      el("dl", { class: "kv card" },
        el("dt", null, "File"), el("dd", { class: "mono" }, v.file),
        el("dt", null, "Mode"), el("dd", null, v.dry_run ? badge("dry run: records what it would deny, blocks nothing", "warn") : badge("enforcing", "ok"))));

    root.append(el("h2", null, v.dry_run ? "What it would have blocked" : "What it blocked"));
    const byRule = Object.entries(blocked.by_rule || {}).map(function (e) {
      return { label: e[0], value: e[1] };
    }).sort(function (a, b) {
      return b.value - a.value;
    });
    root.append(el("p", { class: "note" }, "Since " + fmtTime(blocked.since) + " (this modgate process). ", link(hashLink("audit", { decision: auditDecision }), "Every refusal in the audit log →")));
    let chart = null;
    if (byRule.length > 0) {
      chart = chartBox("Refusals by rule");
      root.append(el("div", { class: "charts" }, chart.box));
    }
    if (blocked.recent.length === 0) {
      root.append(el("p", { class: "note" }, "Nothing refused yet."));
    } else {
      root.append(table(
        [["Time", "nowrap"], ["Principal"], ["Module", "path"], ["Version", "nowrap"], ["Rule"], ["Reason"]],
        blocked.recent.map(function (r) {
          return [timeCell(r.time), r.principal, link(hashLink("audit", { module: r.module, decision: auditDecision }), r.module), r.version || "@latest", r.rule, r.reason];
        }),
      ));
    }

    root.append(el("h2", null, "Rules"));
    let any = false;
    const section = function (title, note, node) {
      any = true;
      appendAll(root, [el("h3", null, title), note ? el("p", { class: "note" }, note) : null, node]);
    };
    if (rules.allow.length > 0) {
      section("Allow", "Only modules matching these are served.", table([["Module", "path"], ["Reason"]], rules.allow.map(function (r) {
        return [el("span", { class: "mono" }, r.module), r.reason || "—"];
      })));
    }
    if (rules.deny.length > 0) {
      section("Deny", null, table([["Module", "path"], ["Versions", "nowrap"], ["Reason"]], rules.deny.map(function (r) {
        return [el("span", { class: "mono" }, r.module), r.versions || "all", r.reason || "—"];
      })));
    }
    if (rules.min_age.length > 0) {
      section("Minimum age", "Versions younger than this are not served yet.", table([["Module", "path"], ["Age"]], rules.min_age.map(function (r) {
        return [el("span", { class: "mono" }, r.module), r.age];
      })));
    }
    if (rules.vulndb) {
      section("Vulnerability database", "Versions with a known vulnerability are refused.", el("p", { class: "mono" }, rules.vulndb));
    }
    if (rules.waive.length > 0) {
      section("Waived advisories", null, table([["Advisory"], ["Module", "path"], ["Reason"]], rules.waive.map(function (r) {
        return [r.id, r.module || "all", r.reason || "—"];
      })));
    }
    if (rules.block_retracted) {
      section("Retracted versions", null, el("p", null, "Refused (block-retracted)."));
    }
    if (!any) {
      root.append(el("p", { class: "note" }, "The policy file has no rules: every version is served."));
    }
    ctx.show(root);
    if (chart) {
      ctx.chart(function () {
        Charts.hbars(chart.plot, { items: byRule, format: fmtCompact, color: 1, label: "Refusals by rule" });
      });
    }
  }

  async function pageHealth(ctx) {
    const h = await api("/admin/v1/health");
    if (ctx.stale()) {
      return;
    }
    const status = function (ok, okText, badText) {
      return ok ? badge(okText || "ok", "ok") : badge(badText || "failing", "bad");
    };
    const kv = function (pairs) {
      const dl = el("dl", { class: "kv" });
      for (const p of pairs) {
        if (p) {
          dl.append(el("dt", null, p[0]), el("dd", null, p[1]));
        }
      }
      return dl;
    };
    const part = function (title, badgeNode, body) {
      return el("div", { class: "card" }, el("h3", null, title, " ", badgeNode), body);
    };

    const s = h.storage;
    const db = h.checksum_db;
    const g = h.git;
    const parts = [
      part("Storage", status(s.ok), kv([["kind", s.kind], s.error ? ["error", el("span", { class: "error" }, s.error)] : null])),
      part("Checksum database", db.enabled ? status(db.ok) : badge("verification off", "warn"), kv([
        db.name ? ["database", db.name] : null,
        typeof db.latest_tree_size === "number" ? ["tree size", fmtNum(db.latest_tree_size)] : null,
        db.error ? ["error", el("span", { class: "error" }, db.error)] : null,
        db.enabled ? null : ["", "modules are stored without checking their hashes (--sumdb off)"],
      ])),
      part("Git sources", g.enabled ? status(g.ok) : badge("off"), kv([
        g.private ? ["private", el("span", { class: "mono" }, g.private)] : null,
        g.enabled ? ["hosts with credentials", g.hosts.length ? g.hosts.join(", ") : "none"] : null,
        g.error ? ["error", el("span", { class: "error" }, g.error)] : null,
        (g.warnings || []).length ? ["warnings", g.warnings.join("; ")] : null,
        g.enabled ? null : ["", "no --private patterns and no direct entry"],
      ])),
    ];
    if (h.redis) {
      parts.push(part("Redis", status(h.redis.ok), kv([h.redis.error ? ["error", el("span", { class: "error" }, h.redis.error)] : null])));
    }
    parts.push(part("modgate", badge(h.version), kv([["checked", fmtTime(h.time)]])));

    const upstreams = table(
      [["Upstream", "path"], ["Kind"], ["Status"], ["Last answer", "nowrap"], ["Last failure", "nowrap"], ["Last error"]],
      h.upstreams.map(function (u) {
        let st;
        if (u.kind !== "proxy") {
          st = badge(u.kind === "off" ? "lookups end here" : "git (see Git sources)");
        } else if (!u.last_success && !u.last_failure) {
          st = badge("not asked yet");
        } else {
          st = status(u.ok, "answering", "failing");
        }
        return [el("span", { class: "mono" }, u.url), u.kind, st, u.last_success ? ago(u.last_success) : "—", u.last_failure ? ago(u.last_failure) : "—", u.last_error || "—"];
      }),
    );

    ctx.show(el("div", null,
      el("h1", null, "Health"),
      el("div", { class: "banner " + (h.ok ? "ok" : "bad"), id: "health-summary" }, h.ok ? "Everything modgate depends on is working." : "Something needs attention: see the parts marked failing."),
      el("div", { class: "cards" }, parts),
      el("h2", null, "Upstreams"),
      el("p", { class: "note" }, "From the requests modgate sent them: an upstream is not probed."),
      upstreams));
  }

  window.addEventListener("hashchange", route);
  route();
})();
