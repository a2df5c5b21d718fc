// The tier form: show only the price fields the chosen plan uses and, in each
// meter's row (requests included), those its pricing model uses. The server
// validates everything again; this is only layout.
(function () {
  "use strict";
  const form = document.getElementById("tier-form");
  if (!form) return;

  function plan() {
    const checked = form.querySelector('input[name="billing_plan"]:checked');
    return checked ? checked.value : "";
  }

  function sync() {
    const chosen = plan();
    form.querySelectorAll("[data-plan]").forEach((el) => {
      el.hidden = el.dataset.plan !== chosen;
    });
    form.querySelectorAll(".meter-price").forEach((row) => {
      const select = row.querySelector('select[name$="-pricing_model"]');
      const model = select ? select.value : "FREE";
      row.querySelectorAll("[data-models]").forEach((el) => {
        el.hidden = !el.dataset.models.split(" ").includes(model);
      });
    });
  }

  form.addEventListener("change", sync);
  sync();
})();
