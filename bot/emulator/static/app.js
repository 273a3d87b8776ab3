// The bertbot emulator's page: polls the emulator's state and sends what you do.
// Message and view HTML comes pre-rendered (and escaped) from the server; everything else
// is set with textContent. No build step, no dependencies.
"use strict";

(() => {
  const POLL_MS = 500;
  const $ = (id) => document.getElementById(id);
  const ui = {
    config: null,
    user: null,
    view: { kind: "channel", id: null },
    version: null,
    data: null,
    seen: {},          // "user/channel" -> number of entries seen
    timelineKey: "",
    homeKey: "",
    modalKey: null,
    polling: null,
  };

  // Talking to the emulator ---------------------------------------------------------------

  async function api(path, body) {
    const options = body === undefined
      ? { method: "GET" }
      : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const response = await fetch("/emulator/api/" + path, options);
    const data = await response.json();
    if (!response.ok && data && data.error) throw new Error(data.error);
    return data;
  }

  async function act(path, body) {
    try {
      const outcome = await api(path, { user: ui.user, ...body });
      if (outcome.error) toast(outcome.error, !outcome.ok);
    } catch (error) {
      toast(String(error.message || error), true);
    }
    poll();
  }

  async function poll() {
    clearTimeout(ui.polling);
    try {
      const since = ui.version === null ? "" : "&since=" + ui.version;
      const data = await api("state?user=" + encodeURIComponent(ui.user) + since);
      $("connection").textContent = "";
      if (!data.unchanged && data.user === ui.user) {
        ui.data = data;
        ui.version = data.version;
        render();
      }
    } catch (error) {
      $("connection").textContent = "· reconnecting…";
    }
    ui.polling = setTimeout(poll, POLL_MS);
  }

  // Rendering ------------------------------------------------------------------------------

  function channelName(id) {
    if (id === ui.config.app_dm) return "bertbot";
    const channel = ui.config.channels.find((c) => c.id === id);
    return channel ? channel.name : id;
  }

  function render() {
    renderSidebar();
    renderMain();
    renderModal();
    renderLog();
  }

  function renderSidebar() {
    const list = $("channel-list");
    list.textContent = "";
    for (const channel of ui.config.channels) {
      const entries = (ui.data.channels[channel.id] || []).length;
      const key = ui.user + "/" + channel.id;
      const current = ui.view.kind === "channel" && ui.view.id === channel.id;
      if (current) ui.seen[key] = entries;
      const unread = entries - (ui.seen[key] || 0);
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "#";
      a.className = "nav-item channel-item" + (current ? " active" : "") + (unread > 0 ? " unread" : "");
      a.dataset.channel = channel.id;
      a.textContent = "# " + channel.name;
      if (unread > 0) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = String(unread);
        a.appendChild(badge);
      }
      li.appendChild(a);
      list.appendChild(li);
    }
    $("home-link").classList.toggle("active", ui.view.kind === "home");
    const dm = ui.config.app_dm;
    const dmEntries = (ui.data.channels[dm] || []).length;
    const dmKey = ui.user + "/" + dm;
    const inDm = ui.view.kind === "channel" && ui.view.id === dm;
    if (inDm) ui.seen[dmKey] = dmEntries;
    const dmLink = $("dm-link");
    dmLink.classList.toggle("active", inDm);
    dmLink.classList.toggle("unread", dmEntries - (ui.seen[dmKey] || 0) > 0);
  }

  function renderMain() {
    const inChannel = ui.view.kind === "channel";
    $("channel-view").hidden = !inChannel;
    $("home-view").hidden = inChannel;
    const inDm = inChannel && ui.view.id === ui.config.app_dm;
    $("composer").hidden = inDm; // the app's Messages tab is read-only
    $("command-hints").hidden = inDm;
    if (inDm) {
      $("main-title").textContent = "bertbot · Messages";
      renderTimeline();
    } else if (inChannel) {
      $("main-title").textContent = "# " + channelName(ui.view.id);
      $("composer-input").placeholder =
        "Message #" + channelName(ui.view.id) + ", or a command such as /classify I love this!";
      renderTimeline();
    } else {
      $("main-title").textContent = "bertbot";
      renderHome();
    }
  }

  function renderTimeline() {
    const entries = ui.data.channels[ui.view.id] || [];
    const scope = ui.user + "|" + ui.view.id;
    const key = scope + "|" + JSON.stringify(entries);
    if (key === ui.timelineKey) return;
    const sameScope = ui.timelineKey.startsWith(scope + "|");
    ui.timelineKey = key;
    const timeline = $("timeline");
    const atBottom = timeline.scrollHeight - timeline.scrollTop - timeline.clientHeight < 40;
    const kept = timeline.scrollTop;
    timeline.textContent = "";
    timeline.appendChild(intro());
    for (const entry of entries) timeline.appendChild(messageElement(entry));
    // Follow new messages unless you scrolled up to read older ones.
    timeline.scrollTop = !sameScope || atBottom ? timeline.scrollHeight : kept;
  }

  function intro() {
    const box = document.createElement("div");
    box.className = "intro";
    const title = document.createElement("strong");
    title.textContent =
      ui.view.id === ui.config.app_dm
        ? "bertbot's private messages to you: notices about your flagged messages, answers to your appeals."
        : "This is #" + channelName(ui.view.id) + " in a local Slack emulator.";
    box.appendChild(title);
    const tips = [
      "As Mia (member): /classify I love this!",
      "As anyone: post WIN a FREE prize now, click here in #general, then switch to Mo (moderator) and open #moderators.",
      "As Ada (admin): /retrain spam, and open bertbot's Home.",
      "As Ada (admin): /bertbot policy, then choose what happens to spam in #general (react, notify, remove).",
    ];
    const list = document.createElement("ul");
    for (const tip of tips) {
      const li = document.createElement("li");
      li.textContent = tip;
      list.appendChild(li);
    }
    box.appendChild(list);
    return box;
  }

  function messageElement(entry) {
    const item = document.createElement("div");
    item.className = "message" + (entry.ephemeral ? " ephemeral" : "") + " author-" + entry.author_kind;
    item.dataset.ref = "m:" + entry.id;
    item.dataset.entry = String(entry.id);
    item.dataset.ts = entry.ts;
    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.textContent = entry.author.charAt(0).toUpperCase();
    item.appendChild(avatar);
    const body = document.createElement("div");
    body.className = "message-body";
    const head = document.createElement("div");
    head.className = "message-head";
    const author = document.createElement("span");
    author.className = "author";
    author.textContent = entry.author;
    head.appendChild(author);
    if (entry.author_kind === "app") head.appendChild(tag("app-badge", "APP"));
    head.appendChild(tag("time", entry.time));
    if (entry.edited) head.appendChild(tag("edited", "(edited)"));
    if (entry.thread) head.appendChild(tag("thread-note", "replied in a thread"));
    body.appendChild(head);
    if (entry.ephemeral) body.appendChild(tag("ephemeral-note", "Only visible to you"));
    const content = document.createElement("div");
    content.className = "message-content";
    content.innerHTML = entry.html; // rendered and escaped by bot/emulator/render.py
    body.appendChild(content);
    if (entry.reactions.length) {
      const reactions = document.createElement("div");
      reactions.className = "reactions";
      for (const reaction of entry.reactions) reactions.appendChild(tag("reaction", reaction + " 1"));
      body.appendChild(reactions);
    }
    item.appendChild(body);
    if (entry.shortcuts && ui.config.shortcuts.length) {
      const more = document.createElement("button");
      more.type = "button";
      more.className = "more-actions icon-btn";
      more.title = "More actions";
      more.setAttribute("aria-label", "More actions");
      more.textContent = "⋯";
      more.dataset.entry = String(entry.id);
      item.appendChild(more);
    }
    return item;
  }

  function tag(className, text) {
    const span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    return span;
  }

  function renderHome() {
    const home = ui.data.home;
    const key = ui.user + "|" + (home ? home.key + home.html : "");
    if (key === ui.homeKey) return;
    ui.homeKey = key;
    const content = $("home-content");
    if (!home) {
      content.dataset.ref = "";
      content.textContent = "bertbot has not published a Home tab for you yet.";
      return;
    }
    content.dataset.ref = "v:" + home.id;
    content.innerHTML = home.html; // rendered and escaped by bot/emulator/render.py
  }

  function renderModal() {
    const modal = ui.data.modal;
    const key = modal ? ui.user + "|" + modal.key : null;
    if (key === ui.modalKey) return;
    ui.modalKey = key;
    $("modal-overlay").hidden = !modal;
    if (!modal) return;
    // Like Slack, an updated view keeps what you typed in inputs with the same ids.
    const typed = $("modal").dataset.viewId === modal.id ? collectInputs($("modal-body")) : {};
    $("modal").dataset.ref = "v:" + modal.id;
    $("modal").dataset.viewId = modal.id;
    $("modal-title").innerHTML = modal.title;
    $("modal-body").innerHTML = modal.html;
    restoreInputs($("modal-body"), typed);
    $("modal-close").innerHTML = modal.close;
    $("modal-submit").innerHTML = modal.submit;
    $("modal-submit").hidden = !modal.submit;
    $("modal-error").hidden = !modal.error;
    $("modal-error").textContent = modal.error || "";
  }

  function renderLog() {
    const log = $("log");
    log.textContent = "";
    for (const item of ui.data.log.slice().reverse()) {
      const li = document.createElement("li");
      li.className = item.ok ? "ok" : "failed";
      li.textContent = item.at + "  " + item.direction + "  " + item.what + (item.detail ? "  · " + item.detail : "");
      log.appendChild(li);
    }
  }

  function toast(text, isError) {
    const box = document.createElement("div");
    box.className = "toast" + (isError ? " error" : "");
    box.textContent = text;
    $("toasts").appendChild(box);
    setTimeout(() => box.remove(), 6000);
  }

  // What you do ------------------------------------------------------------------------------

  function collectInputs(root) {
    const inputs = {};
    for (const block of root.querySelectorAll("[data-input-block]")) {
      const type = block.dataset.type;
      let value = null;
      if (type === "checkboxes") {
        value = [...block.querySelectorAll("input:checked")].map((i) => i.value);
      } else if (type === "radio_buttons") {
        const checked = block.querySelector("input:checked");
        value = checked ? checked.value : null;
      } else {
        const control = block.querySelector("input, textarea, select");
        value = control ? control.value : null;
      }
      inputs[block.dataset.inputBlock] = { [block.dataset.actionId]: value };
    }
    return inputs;
  }

  function restoreInputs(root, typed) {
    for (const block of root.querySelectorAll("[data-input-block]")) {
      const value = (typed[block.dataset.inputBlock] || {})[block.dataset.actionId];
      if (value === undefined || value === null) continue;
      const values = Array.isArray(value) ? value : [value];
      for (const control of block.querySelectorAll("input, textarea, select")) {
        if (control.type === "checkbox" || control.type === "radio") {
          control.checked = values.includes(control.value);
        } else {
          control.value = values[0];
        }
      }
    }
  }

  function sendAction(element, value) {
    const surface = element.closest("[data-ref]");
    if (!surface || !surface.dataset.ref) return;
    const body = {
      ref: surface.dataset.ref,
      block: Number(element.dataset.block),
      element: element.dataset.element,
      action_id: element.dataset.actionId,
    };
    if (value !== undefined) body.value = value;
    if (surface.dataset.ref.startsWith("v:")) body.inputs = collectInputs(surface);
    act("action", body);
  }

  function showChannel(id, ts) {
    ui.view = { kind: "channel", id };
    ui.timelineKey = "";
    if (ui.data) render();
    if (ts) {
      const target = document.querySelector('.message[data-ts="' + CSS.escape(ts) + '"]');
      if (target) {
        target.scrollIntoView({ block: "center" });
        target.classList.add("flash");
        setTimeout(() => target.classList.remove("flash"), 1500);
      }
    }
  }

  function showHome() {
    ui.view = { kind: "home", id: null };
    ui.homeKey = "";
    if (ui.data) render();
    act("home", {});
  }

  function switchUser(id) {
    ui.user = id;
    ui.version = null;
    ui.timelineKey = ui.homeKey = "";
    ui.modalKey = null;
    localStorage.setItem("bertbot-emulator-user", id);
    const user = ui.config.users.find((u) => u.id === id);
    $("user-role").textContent = user ? "role: " + user.role + " · " + user.id : "";
    if (ui.view.kind === "home") showHome();
    else poll();
  }

  function showShortcutMenu(button) {
    const menu = $("shortcut-menu");
    menu.textContent = "";
    for (const shortcut of ui.config.shortcuts) {
      const item = document.createElement("button");
      item.type = "button";
      item.className = "menu-item";
      item.textContent = shortcut.title;
      item.dataset.callbackId = shortcut.callback_id;
      item.dataset.entry = button.dataset.entry;
      menu.appendChild(item);
    }
    const rect = button.getBoundingClientRect();
    menu.style.top = rect.bottom + window.scrollY + "px";
    menu.style.left = Math.max(8, rect.right - 220) + "px";
    menu.hidden = false;
  }

  function wire() {
    document.addEventListener("click", (event) => {
      const target = event.target.closest("button, a");
      const menu = $("shortcut-menu");
      if (!target || !menu.contains(target)) menu.hidden = true;
      if (!target) return;
      if (target.matches("a[data-jump-channel]")) {
        event.preventDefault();
        showChannel(target.dataset.jumpChannel, target.dataset.jumpTs);
      } else if (target.matches("a.channel-item")) {
        event.preventDefault();
        showChannel(target.dataset.channel);
      } else if (target.id === "dm-link") {
        event.preventDefault();
        showChannel(ui.config.app_dm);
      } else if (target.id === "home-link") {
        event.preventDefault();
        showHome();
      } else if (target.matches("button[data-action-id]")) {
        if (target.dataset.url) window.open(target.dataset.url, "_blank", "noopener");
        sendAction(target);
      } else if (target.matches("button.more-actions")) {
        showShortcutMenu(target);
      } else if (target.matches("button.menu-item")) {
        menu.hidden = true;
        act("shortcut", { entry: Number(target.dataset.entry), callback_id: target.dataset.callbackId });
      } else if (target.id === "modal-submit") {
        act("submit", { view_id: $("modal").dataset.viewId, inputs: collectInputs($("modal-body")) });
      } else if (target.id === "modal-close" || target.id === "modal-x") {
        act("close", { view_id: $("modal").dataset.viewId });
      } else if (target.matches("button.command-hint")) {
        const input = $("composer-input");
        input.value = target.dataset.command + " ";
        input.focus();
      }
    });
    document.addEventListener("change", (event) => {
      const target = event.target;
      if (target.matches("select[data-action-id]") && target.value) sendAction(target, target.value);
    });
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("composer-input");
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      act("send", { channel: ui.view.id, text });
    });
    $("composer-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("user-select").addEventListener("change", (event) => switchUser(event.target.value));
  }

  async function start() {
    ui.config = await api("config");
    const select = $("user-select");
    for (const user of ui.config.users) {
      const option = document.createElement("option");
      option.value = user.id;
      option.textContent = user.real_name;
      select.appendChild(option);
    }
    const hints = $("command-hints");
    for (const command of ui.config.commands) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "command-hint";
      chip.dataset.command = command;
      chip.textContent = command;
      hints.appendChild(chip);
    }
    const saved = localStorage.getItem("bertbot-emulator-user");
    const user = ui.config.users.some((u) => u.id === saved) ? saved : ui.config.users[0].id;
    select.value = user;
    ui.view = { kind: "channel", id: ui.config.channels[0].id };
    wire();
    switchUser(user);
  }

  start().catch((error) => toast("The emulator did not start: " + error, true));
})();
