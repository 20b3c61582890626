// The account form: the port's placeholder follows protocol and security (an empty port
// takes that default on the server too), a port that held the old default follows along,
// and what only IMAP has (folders, folder rules, push) shows only for IMAP: hidden for POP3,
// and not sent either, so that a value typed there before the switch cannot be refused.
// Without JavaScript the form works the same (the help texts say what POP3 ignores).
(function () {
  "use strict";

  function setup() {
    var form = document.getElementById("account-form");
    if (!form) {
      return;
    }
    var ports = JSON.parse(form.getAttribute("data-default-ports") || "{}");
    var protocol = form.elements.namedItem("protocol");
    var security = form.elements.namedItem("security");
    var port = form.elements.namedItem("port");
    var imapOnly = Array.prototype.slice.call(document.querySelectorAll("[data-imap-only]"));
    var portHelp = document.getElementById("h-port");
    if (!protocol || !security || !port) {
      return;
    }
    var shown = String(ports[protocol.value + "/" + security.value] || "");

    function update() {
      var wanted = String(ports[protocol.value + "/" + security.value] || "");
      if (port.value === shown) {
        port.value = wanted;
      }
      port.placeholder = wanted;
      if (portHelp) {
        portHelp.textContent = "Empty: the default for the protocol and security (" + wanted + ").";
      }
      shown = wanted;
      var pop3 = protocol.value !== "imap";
      imapOnly.forEach(function (part) {
        part.hidden = pop3;
        part.querySelectorAll("input, textarea, select").forEach(function (field) {
          field.disabled = pop3;
        });
      });
    }

    protocol.addEventListener("change", update);
    security.addEventListener("change", update);
    update();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();

// A field's error (from the last submit) goes away once the field is changed, and the
// summary above the form with the last one; an inline "Test connection" leaves no stale marks.
(function () {
  "use strict";

  function clear(event) {
    var input = event.target;
    if (!input || input.getAttribute("aria-invalid") !== "true") {
      return;
    }
    input.removeAttribute("aria-invalid");
    var field = input.closest(".field");
    if (field) {
      field.classList.remove("has-error");
      var message = field.querySelector(".field-error");
      if (message) {
        message.hidden = true;
      }
    }
    var form = input.form;
    var summary = document.getElementById("error-summary");
    if (summary && form && !form.querySelector('[aria-invalid="true"]')) {
      summary.hidden = true;
    }
  }

  document.addEventListener("input", clear);
  document.addEventListener("change", clear);
})();
