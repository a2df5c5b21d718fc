// The tier form: show only the price fields the chosen plan and pricing model use,
// and add band rows. The server validates everything again; this is only layout.
(function () {
  "use strict";
  const form = document.getElementById("tier-form");
  if (!form) return;

  function value(name) {
    const checked = form.querySelector(`input[name="${name}"]:checked`);
    if (checked) return checked.value;
    const select = form.querySelector(`select[name="${name}"]`);
    return select ? select.value : "";
  }

  function sync() {
    const plan = value("billing_plan");
    const model = plan === "COMMERCIAL" ? value("pricing_model") : "FREE";
    form.querySelectorAll("[data-plan]").forEach((el) => {
      el.hidden = el.dataset.plan !== plan;
    });
    form.querySelectorAll("[data-models]").forEach((el) => {
      el.hidden = !el.dataset.models.split(" ").includes(model);
    });
  }

  form.addEventListener("change", sync);
  sync();

  const add = document.getElementById("add-band");
  if (add) {
    add.addEventListener("click", () => {
      const total = form.querySelector('input[name="bands-TOTAL_FORMS"]');
      const n = parseInt(total.value, 10);
      const html = document
        .getElementById("band-template")
        .innerHTML.replace(/__prefix__/g, String(n))
        .replace(/__number__/g, String(n + 1));
      document.getElementById("band-rows").insertAdjacentHTML("beforeend", html);
      total.value = String(n + 1);
      const first = document.getElementById(`id_bands-${n}-up_to`);
      if (first) first.focus();
    });
  }
})();
