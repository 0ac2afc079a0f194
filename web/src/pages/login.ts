// Sign-in: username and password for a token pair; the refresh token keeps the session alive.
import { login } from "../api";
import { card, field, h, input } from "../dom";
import { clearErrors, showError } from "../errors";
import type { PageContext } from "../page";

export function loginPage({ root }: PageContext): void {
  const username = input({ name: "username", autocomplete: "username", required: true });
  const password = input({
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { type: "submit", "data-testid": "login" }, "Sign in");
  const form = h(
    "form",
    { class: "stack", novalidate: true, "data-testid": "login-form" },
    field("Username", username, "username"),
    field("Password", password, "password"),
    submit,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    login(username.value.trim(), password.value)
      .then(() => {
        const next = sessionStorage.getItem("stratopt.next");
        sessionStorage.removeItem("stratopt.next");
        const target = next && !next.includes("login") ? next : "#/datasets";
        if (window.location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
        else window.location.hash = target;
      })
      .catch((e: unknown) => showError(form, e))
      .finally(() => {
        submit.disabled = false;
      });
  });
  root.append(card("Sign in to stratopt", form));
  username.focus();
}
