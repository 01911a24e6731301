// API tokens (everyone): one's own (admins may list everyone's), a new one with a role no higher
// than one's own and an optional expiry, its secret shown once with a copy button; revoke.
import { useRef, useState } from "preact/hooks";

import { api, ApiError, ApiToken, can, Me, Role, ROLES, useGet, when } from "../api";
import { Alert, Choice, Field, fieldErrors } from "../forms";

// The secret of a token just made: shown once, with a copy button and what it means.
function NewSecret(props: { token: ApiToken; onDone: () => void }) {
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.token.token!);
      setCopied("Copied.");
    } catch {
      // No clipboard access (an http page, a denied permission): select it for Ctrl+C.
      input.current?.select();
      setCopied("Selected: press Ctrl+C to copy it.");
    }
  };
  return (
    <div class="result secret" role="region" aria-labelledby="new-token-title" data-new-token={props.token.id}>
      <h2 id="new-token-title">The token {props.token.name}</h2>
      <p class="warning">
        <strong>Copy it now: it is shown only this once.</strong> The server keeps only its hash. Anyone who has it acts as{" "}
        {props.token.username} with the role {props.token.role}: keep it like a password.
      </p>
      <label for="new-token-secret">Secret</label>
      <div class="secret-row">
        <input
          id="new-token-secret"
          class="mono"
          readOnly
          value={props.token.token}
          ref={input}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" onClick={copy}>
          Copy
        </button>
        <button type="button" onClick={props.onDone}>
          Done
        </button>
      </div>
      <p role="status" class="muted">
        {copied}
      </p>
    </div>
  );
}

export function Tokens({ me }: { me: Me }) {
  const [everyone, setEveryone] = useState(false);
  const [tokens, error, load, setError] = useGet<ApiToken[]>(everyone ? "/api/tokens?all=true" : "/api/tokens");
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>(me.role);
  const [days, setDays] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [made, setMade] = useState<ApiToken | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setErrors({});
    const body: Record<string, unknown> = { name, role };
    // A text that is not a number goes as it is, for the API to name.
    if (days.trim()) body.expires_days = /^\d+$/.test(days.trim()) ? Number(days.trim()) : days;
    try {
      setMade(await api<ApiToken>("POST", "/api/tokens", body));
      setName("");
      setDays("");
      load();
    } catch (err) {
      setErrors(fieldErrors(err as ApiError, ["name", "role", "expires_days"]));
    }
  };

  const revoke = async (t: ApiToken) => {
    if (!window.confirm(`Revoke the token ${t.name}? Whatever uses it is refused from now on.`)) return;
    try {
      await api("DELETE", `/api/tokens/${encodeURIComponent(t.id)}`);
      if (made?.id === t.id) setMade(null);
      load();
    } catch (err) {
      setError((err as ApiError).message);
    }
  };

  return (
    <section aria-labelledby="tokens-title">
      <h1 id="tokens-title">API tokens</h1>
      <p class="muted">
        For scripts and the command line: <span class="mono">Authorization: Bearer pbt_…</span> or{" "}
        <span class="mono">pacsbridge --token</span>.
      </p>
      {made && <NewSecret token={made} onDone={() => setMade(null)} />}
      <form class="form-grid token-form" onSubmit={create} noValidate aria-labelledby="new-token-form-title">
        <h2 id="new-token-form-title" class="wide">
          New token
        </h2>
        <Field id="token-name" label="Name" value={name} onChange={setName} error={errors.name} help="what it is for" />
        <Choice
          id="token-role"
          label="Role"
          value={role}
          options={ROLES.slice(ROLES.indexOf(me.role))}
          onChange={setRole}
          error={errors.role}
          help="at most your own"
        />
        <Field
          id="token-days"
          label="Expires after (days)"
          numeric
          value={days}
          onChange={setDays}
          error={errors.expires_days}
          help="1-3650; empty: never"
        />
        <Alert text={errors.general ?? ""} wide />
        <div class="buttons">
          <button type="submit">Create token</button>
        </div>
      </form>
      <div class="page-head">
        <h2>{everyone ? "Everyone's tokens" : "Your tokens"}</h2>
        {can(me, "admin") && (
          <label>
            <input type="checkbox" checked={everyone} onChange={(e) => setEveryone(e.currentTarget.checked)} /> everyone's
          </label>
        )}
      </div>
      <Alert text={error} />
      {tokens && tokens.length === 0 && <p>No token.</p>}
      {tokens && tokens.length > 0 && (
        <table class="grid">
          <caption class="sr-only">API tokens</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              {everyone && <th scope="col">Owner</th>}
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr data-token={t.id} data-token-name={t.name}>
                <th scope="row">{t.name}</th>
                {everyone && <td>{t.username}</td>}
                <td>{t.role}</td>
                <td>{when(t.created_at)}</td>
                <td>{t.last_used_at ? when(t.last_used_at) : <span class="muted">never</span>}</td>
                <td>{t.expires_at ? when(t.expires_at) : <span class="muted">never</span>}</td>
                <td class="actions">
                  <button type="button" class="danger" onClick={() => revoke(t)}>
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
