// Form pieces of the administration pages: a visible label for every field, its help, and the
// API's own words beside it (aria-invalid, aria-describedby), as the node dialog does it; a
// dialog whose form ends in Cancel and a submit button; an alert line.
import { ApiError } from "./api";
import { Modal } from "./pages/Connections";

// The ids a field's aria-describedby names: its help and its error, when shown.
export function describedBy(id: string, help?: string, error?: string): string | undefined {
  return [help ? `${id}-help` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
}

// The help and the API's error under a field (ids `${id}-help`, `${id}-error`).
export function FieldNotes(props: { id: string; help?: string; error?: string }) {
  return (
    <>
      {props.help && (
        <div id={`${props.id}-help`} class="help">
          {props.help}
        </div>
      )}
      {props.error && (
        <div id={`${props.id}-error`} class="field-error" role="alert">
          {props.error}
        </div>
      )}
    </>
  );
}

// A refusal of the API as {field: message} for the fields a form shows, else {general: message}.
export function fieldErrors(e: ApiError, fields: string[]): Record<string, string> {
  return { [e.field && fields.includes(e.field) ? e.field : "general"]: e.message };
}

// An error of a page or form, in the API's words ("" shows nothing).
export function Alert(props: { text: string; wide?: boolean }) {
  if (!props.text) return null;
  return (
    <p class={props.wide ? "error wide" : "error"} role="alert">
      {props.text}
    </p>
  );
}

interface FieldProps<T> {
  id: string;
  label: string;
  value: T;
  onChange: (value: T) => void;
  help?: string;
  error?: string;
}

// A label + text input pair of a form grid.
export function Field(props: FieldProps<string> & { type?: "text" | "password"; numeric?: boolean; autocomplete?: string }) {
  return (
    <>
      <label for={props.id}>{props.label}</label>
      <div>
        <input
          id={props.id}
          type={props.type ?? "text"}
          inputMode={props.numeric ? "numeric" : undefined}
          autocomplete={props.autocomplete ?? "off"}
          value={props.value}
          aria-invalid={props.error ? "true" : undefined}
          aria-describedby={describedBy(props.id, props.help, props.error)}
          onInput={(e) => props.onChange(e.currentTarget.value)}
        />
        <FieldNotes id={props.id} help={props.help} error={props.error} />
      </div>
    </>
  );
}

// A label + checkbox pair of a form grid.
export function Check(props: FieldProps<boolean>) {
  return (
    <>
      <label for={props.id}>{props.label}</label>
      <div>
        <input
          id={props.id}
          type="checkbox"
          checked={props.value}
          aria-invalid={props.error ? "true" : undefined}
          aria-describedby={describedBy(props.id, props.help, props.error)}
          onChange={(e) => props.onChange(e.currentTarget.checked)}
        />
        <FieldNotes id={props.id} help={props.help} error={props.error} />
      </div>
    </>
  );
}

// A label + select pair of a form grid.
export function Choice<T extends string>(props: FieldProps<T> & { options: readonly T[] }) {
  return (
    <>
      <label for={props.id}>{props.label}</label>
      <div>
        <select
          id={props.id}
          value={props.value}
          aria-invalid={props.error ? "true" : undefined}
          aria-describedby={describedBy(props.id, props.help, props.error)}
          onChange={(e) => props.onChange(e.currentTarget.value as T)}
        >
          {props.options.map((o) => (
            <option value={o}>{o}</option>
          ))}
        </select>
        <FieldNotes id={props.id} help={props.help} error={props.error} />
      </div>
    </>
  );
}

// A dialog with one form: its fields, an error that names no field, Cancel and the submit button.
export function DialogForm(props: {
  title: string;
  submit: string; // the submit button's text
  busy: boolean;
  error: string;
  onSubmit: () => void;
  onClose: () => void;
  formClass?: string;
  children: preact.ComponentChildren;
}) {
  return (
    <Modal title={props.title} onClose={props.onClose}>
      <form
        class={props.formClass ?? "form-grid"}
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          props.onSubmit();
        }}
      >
        {props.children}
        <Alert text={props.error} wide />
        <div class="buttons">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" disabled={props.busy}>
            {props.submit}
          </button>
        </div>
      </form>
    </Modal>
  );
}
