// Accounts (admins): who may log in, with which role; add one, change a role, set a new password,
// delete one. The API's refusals (the last admin, a weak password) are shown in its words.
import { useState } from "preact/hooks";

import { api, ApiError, Me, Role, ROLES, useGet, User, when } from "../api";
import { Alert, Choice, DialogForm, Field, fieldErrors } from "../forms";

export function Users({ me }: { me: Me }) {
  const [users, error, load] = useGet<User[]>("/api/users");
  const [adding, setAdding] = useState(false);
  const [password, setPassword] = useState<User | null>(null);
  const [rowError, setRowError] = useState<{ user: string; message: string } | null>(null);

  // A role change applies at once; a refusal (the last admin) is shown on the row, which keeps
  // the role it has.
  const changeRole = async (u: User, role: Role) => {
    setRowError(null);
    try {
      await api("PUT", `/api/users/${encodeURIComponent(u.username)}`, { role });
    } catch (e) {
      setRowError({ user: u.username, message: (e as ApiError).message });
    }
    load();
  };

  const remove = async (u: User) => {
    if (!window.confirm(`Delete the account ${u.username}? Its sessions and API tokens end with it.`)) return;
    setRowError(null);
    try {
      await api("DELETE", `/api/users/${encodeURIComponent(u.username)}`);
      load();
    } catch (e) {
      setRowError({ user: u.username, message: (e as ApiError).message });
    }
  };

  return (
    <section aria-labelledby="users-title">
      <div class="page-head">
        <h1 id="users-title">Users</h1>
        <button type="button" onClick={() => setAdding(true)}>
          Add user
        </button>
      </div>
      <Alert text={error} />
      {users && (
        <table class="grid">
          <caption class="sr-only">Accounts</caption>
          <thead>
            <tr>
              <th scope="col">User name</th>
              <th scope="col">Role</th>
              <th scope="col">Created</th>
              <th scope="col">Password changed</th>
              <th scope="col">Last log-in</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <>
                <tr data-user={u.username}>
                  <th scope="row">
                    {u.username}
                    {u.username === me.username && <span class="muted"> (you)</span>}
                  </th>
                  <td>
                    <select
                      aria-label={`Role of ${u.username}`}
                      value={u.role}
                      onChange={(e) => changeRole(u, e.currentTarget.value as Role)}
                    >
                      {ROLES.map((r) => (
                        <option value={r}>{r}</option>
                      ))}
                    </select>
                  </td>
                  <td>{when(u.created_at)}</td>
                  <td>{when(u.password_changed_at)}</td>
                  <td>{u.last_login_at ? when(u.last_login_at) : <span class="muted">never</span>}</td>
                  <td class="actions">
                    <button type="button" onClick={() => setPassword(u)}>
                      Set password
                    </button>
                    <button type="button" class="danger" onClick={() => remove(u)}>
                      Delete
                    </button>
                  </td>
                </tr>
                {rowError?.user === u.username && (
                  <tr class="detail">
                    <td colSpan={6}>
                      <p class="error" role="alert" data-row-error={u.username}>
                        {rowError.message}
                      </p>
                    </td>
                  </tr>
                )}
              </>
            ))}
          </tbody>
        </table>
      )}
      {adding && (
        <AddUserDialog
          onClose={() => setAdding(false)}
          onSaved={() => {
            setAdding(false);
            load();
          }}
        />
      )}
      {password && (
        <PasswordDialog
          user={password}
          onClose={() => setPassword(null)}
          onSaved={() => {
            setPassword(null);
            load();
          }}
        />
      )}
    </section>
  );
}

// A password being chosen: the browser may suggest one; the API says what it refuses.
function NewPassword(props: { id: string; label: string; value: string; onChange: (v: string) => void; error?: string }) {
  return <Field {...props} type="password" autocomplete="new-password" help="at least 8 characters, not the user name" />;
}

function AddUserDialog(props: { onClose: () => void; onSaved: () => void }) {
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<Role>("user");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  const save = async () => {
    setBusy(true);
    try {
      await api("POST", "/api/users", { username, role, password });
      props.onSaved();
    } catch (e) {
      setErrors(fieldErrors(e as ApiError, ["username", "role", "password"]));
    } finally {
      setBusy(false);
    }
  };

  return (
    <DialogForm
      title="Add user"
      submit="Add user"
      busy={busy}
      error={errors.general ?? ""}
      onSubmit={save}
      onClose={props.onClose}
    >
      <Field
        id="user-name"
        label="User name"
        value={username}
        onChange={setUsername}
        error={errors.username}
        help="letters, digits, . _ @ -"
      />
      <Choice id="user-role" label="Role" value={role} options={ROLES} onChange={setRole} error={errors.role} />
      <NewPassword id="user-password" label="Password" value={password} onChange={setPassword} error={errors.password} />
    </DialogForm>
  );
}

function PasswordDialog(props: { user: User; onClose: () => void; onSaved: () => void }) {
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  const save = async () => {
    setBusy(true);
    try {
      await api("PUT", `/api/users/${encodeURIComponent(props.user.username)}`, { password });
      props.onSaved();
    } catch (e) {
      setErrors(fieldErrors(e as ApiError, ["password"]));
    } finally {
      setBusy(false);
    }
  };

  return (
    <DialogForm
      title={`New password for ${props.user.username}`}
      submit="Set password"
      busy={busy}
      error={errors.general ?? ""}
      onSubmit={save}
      onClose={props.onClose}
    >
      <NewPassword id="set-password" label="New password" value={password} onChange={setPassword} error={errors.password} />
      <p class="help wide">The account's sessions end with the change.</p>
    </DialogForm>
  );
}
