// Progressive enhancement only: every page works without it.
(function () {
  "use strict";
  function value(form, name) {
    var el = form.elements.namedItem(name);
    if (!el) return null;
    if (el.type === "checkbox") return el.checked ? "on" : "";
    return el.value;
  }
  function applies(form, rule) {
    // "a=b|c!=d|flag": shown when any part holds
    return rule.split("|").some(function (part) {
      var m = part.match(/^([^!=]+)(!?=)(.*)$/);
      if (!m) return value(form, part) === "on";
      var v = value(form, m[1]);
      return m[2] === "=" ? v === m[3] : v !== m[3];
    });
  }
  function refresh(form) {
    form.querySelectorAll("[data-show-when]").forEach(function (el) {
      el.hidden = !applies(form, el.getAttribute("data-show-when"));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(function (form) {
      if (!form.querySelector("[data-show-when]")) return;
      refresh(form);
      form.addEventListener("change", function () { refresh(form); });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
  });
})();
