/* Postback form: the placeholder picker, the live preview and the test send panel.
   Plain JavaScript, no build step. The server renders; this file only sends the form's values
   and shows the answer. */
(function () {
  "use strict";

  var DEBOUNCE_MS = 300;

  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  /* --- Picker: insert {name} at the cursor of the URL field or the body template. --- */
  function setUpPicker(picker) {
    var url = document.getElementById("id_url");
    var body = document.getElementById("id_body_template");
    var label = picker.querySelector(".pb-target");
    var target = url;
    [[url, "URL"], [body, "body template"]].forEach(function (pair) {
      if (!pair[0]) return;
      pair[0].addEventListener("focus", function () {
        target = pair[0];
        label.textContent = pair[1];
      });
    });
    picker.addEventListener("click", function (event) {
      var chip = event.target.closest(".pb-chip");
      if (!chip || chip.disabled || !target) return;
      event.preventDefault();
      if (target.disabled) { // the body template, hidden since the method became GET
        target = url;
        label.textContent = "URL";
      }
      insertAtCursor(target, chip.getAttribute("data-token"));
    });
  }

  function insertAtCursor(field, text) {
    var start = field.selectionStart == null ? field.value.length : field.selectionStart;
    var end = field.selectionEnd == null ? start : field.selectionEnd;
    field.value = field.value.slice(0, start) + text + field.value.slice(end);
    field.focus();
    field.setSelectionRange(start + text.length, start + text.length);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  /* --- The form follows its own choices: body fields for POST, the offers box's meaning for
     the scope, one "value to send" row per ticked status. Hidden fields are disabled, so
     neither the preview nor the save sees them. --- */
  function checked(form, name) {
    var input = form.querySelector("input[name=" + name + "]:checked");
    return input ? input.value : "";
  }

  function showRow(row, shown) {
    if (!row) return;
    row.classList.toggle("hidden", !shown);
    row.querySelectorAll("input, textarea, select").forEach(function (input) {
      input.disabled = !shown;
    });
  }

  function setUpMethod(form) {
    function apply() {
      var post = checked(form, "method") === "POST";
      form.querySelectorAll(".field-body_format, .field-body_template").forEach(function (row) {
        showRow(row, post);
      });
    }
    form.querySelectorAll("input[name=method]").forEach(function (radio) {
      radio.addEventListener("change", apply);
    });
    apply();
  }

  function setUpScope(form) {
    var offers = form.querySelector("[data-scope-texts]");
    if (!offers) return;
    var texts = JSON.parse(offers.getAttribute("data-scope-texts"));
    function apply() {
      var text = texts[checked(form, "scope")];
      if (!text) return;
      var label = form.querySelector(".field-offers label[for='id_offers']");
      if (label) label.textContent = text.label + ":";
      var help = document.getElementById("id_offers_helptext");
      if (help) help.textContent = text.help;
      // The two-box selector (built on page load) titles its right box "Chosen offers".
      var chosen = document.querySelector("#id_offers_to_title label");
      if (chosen) chosen.textContent = text.label + " ";
    }
    form.querySelectorAll("input[name=scope]").forEach(function (radio) {
      radio.addEventListener("change", apply);
    });
    apply();
    window.addEventListener("load", apply);
  }

  function setUpStatusValues(form) {
    form.querySelectorAll("input[name=statuses]").forEach(function (box) {
      var input = form.querySelector("input[name=status_value_" + box.value + "]");
      if (!input) return;
      function apply() {
        input.type = box.checked ? "text" : "hidden";
        showRow(input.closest(".form-row"), box.checked);
      }
      box.addEventListener("change", apply);
      apply();
    });
  }

  /* --- Live preview: POST the form to the preview view, show the rendered request. --- */
  function setUpPreview(preview, form) {
    var output = document.getElementById("pb-request");
    var problems = document.getElementById("pb-problems");
    var select = document.getElementById("pb-conversion");
    var endpoint = preview.getAttribute("data-endpoint");
    var timer = null;
    var latest = 0;
    var lastAffiliate = null;

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }

    function refresh() {
      var data = new FormData(form);
      data.set("preview_conversion", select.value);
      var mine = ++latest;
      preview.classList.add("pb-loading");
      fetch(endpoint, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (answer) {
          if (mine !== latest) return; // an older answer arriving late
          show(answer, data.get("affiliate"));
        })
        .catch(function (error) {
          if (mine !== latest) return;
          output.textContent = "Preview unavailable: " + error.message;
        })
        .finally(function () {
          if (mine === latest) preview.classList.remove("pb-loading");
        });
    }

    function show(answer, affiliate) {
      if (affiliate !== lastAffiliate) {
        fillConversions(answer.conversions, answer.conversion);
        lastAffiliate = affiliate;
      }
      // Each problem shows once: a message already next to its field (from the last save) is
      // not repeated here, and a request that cannot be rendered points at the listed cause.
      var onPage = fieldErrors(form);
      var listed = answer.errors.filter(function (message) {
        return !/^Unknown placeholder/.test(message) && onPage.indexOf(message) === -1;
      });
      output.textContent = "";
      if (answer.error) {
        var covered = listed.length || answer.errors.length;
        output.appendChild(el("span", { class: "pb-render-error" }, !covered ? answer.error
          : listed.length ? "No preview until the problems below are fixed."
            : "No preview until the errors marked in the form are fixed."));
      } else {
        output.appendChild(document.createTextNode(answer.method + " "));
        appendSegments(output, answer.url);
        (answer.headers || []).forEach(function (pair) {
          output.appendChild(document.createTextNode("\n" + pair[0] + ": " + pair[1]));
        });
        if (answer.body.length) {
          output.appendChild(document.createTextNode("\n\n"));
          appendSegments(output, answer.body);
        }
      }
      problems.textContent = "";
      answer.unknown.forEach(function (token) {
        problems.appendChild(el("li", { class: "pb-unknown-note" },
          "Unknown placeholder " + token + ": it would stop the postback from saving."));
      });
      listed.forEach(function (message) {
        problems.appendChild(el("li", {}, message));
      });
    }

    // The messages the server put next to fields on the last save: each error shows once.
    function fieldErrors(form) {
      return Array.prototype.map.call(form.querySelectorAll(".errorlist li"), function (li) {
        return li.textContent;
      });
    }

    function appendSegments(parent, segments) {
      segments.forEach(function (segment) {
        if (segment.unknown) {
          parent.appendChild(el("mark", { class: "pb-unknown", title: "Unknown placeholder" },
            segment.text));
        } else {
          parent.appendChild(document.createTextNode(segment.text));
        }
      });
    }

    function fillConversions(conversions, chosen) {
      var keep = select.value;
      while (select.options.length > 1) select.remove(1);
      conversions.forEach(function (conversion) {
        select.appendChild(el("option", { value: conversion.id }, conversion.label));
      });
      select.value = chosen || (conversions.some(function (c) { return c.id === keep; }) ? keep : "");
    }

    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
    // The affiliate autocomplete (select2) announces changes through jQuery only.
    if (window.django && window.django.jQuery) {
      window.django.jQuery("#id_affiliate").on("change", schedule);
    }
    refresh();
  }

  /* --- Test send: send the saved postback now, show request and response inline. --- */
  function setUpTestSend(panel, form) {
    var button = document.getElementById("pb-test-send");
    var result = document.getElementById("pb-test-result");
    var select = document.getElementById("pb-conversion");
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var data = new FormData();
      data.set("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      data.set("conversion", select ? select.value : "");
      button.disabled = true;
      result.textContent = "Sending…";
      fetch(panel.getAttribute("data-endpoint"), {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) { return response.json(); })
        .then(function (answer) { showResult(result, answer); })
        .catch(function (error) { result.textContent = "Test send failed: " + error.message; })
        .finally(function () { button.disabled = false; });
    });
  }

  function showResult(result, answer) {
    result.textContent = "";
    if (answer.error && !answer.request) {
      result.appendChild(el("p", { class: "errornote" }, answer.error));
      return;
    }
    var head = el("p", { class: "pb-test-state pb-state-" + answer.state });
    head.appendChild(el("strong", {}, "Test " + answer.state_label.toLowerCase()));
    head.appendChild(document.createTextNode(" · "));
    head.appendChild(el("a", { href: answer.delivery_url }, "open in the tracking log"));
    result.appendChild(head);
    var req = answer.request;
    var res = answer.response;
    result.appendChild(el("h4", {}, "Request"));
    result.appendChild(el("pre", { class: "pb-test-request" },
      req.method + " " + req.url + (req.body ? "\n\n" + req.body : "")));
    result.appendChild(el("h4", {}, "Response"));
    var text = res.status ? "HTTP " + res.status + " in " + res.duration_ms + " ms" : "No response";
    if (res.error) text += "\n" + res.error;
    if (res.body) text += "\n\n" + res.body;
    result.appendChild(el("pre", { class: "pb-test-response" }, text));
  }

  ready(function () {
    var postbackForm = document.getElementById("postback_form");
    if (postbackForm) {
      setUpMethod(postbackForm);
      setUpStatusValues(postbackForm);
    }
    // The postback form and the assistant's last step: the offers box follows the scope.
    document.querySelectorAll("form").forEach(function (form) {
      setUpScope(form);
    });
    var picker = document.querySelector(".pb-picker");
    if (picker) setUpPicker(picker);
    var preview = document.getElementById("pb-preview");
    var form = preview && preview.closest("form");
    if (preview && form) setUpPreview(preview, form);
    var panel = document.getElementById("pb-test-panel");
    if (panel && form) setUpTestSend(panel, form);
  });
})();
