import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { api, ApiError, can, Me, Role, setCsrfToken, whenSignedOut } from "./api";
import { Archive } from "./pages/Archive";
import { Audit } from "./pages/Audit";
import { Connections } from "./pages/Connections";
import { Import } from "./pages/Import";
import { Jobs } from "./pages/Jobs";
import { Login } from "./pages/Login";
import { Receivers } from "./pages/Receivers";
import { Tokens } from "./pages/Tokens";
import { Users } from "./pages/Users";
import { Viewer } from "./pages/Viewer";
import { Worklist } from "./pages/Worklist";
import { Send } from "./pages/Send";
import "./styles.css";

interface Page {
  hash: string;
  title: string;
  view: (me: Me) => preact.JSX.Element;
  role?: Role; // the least role that sees the page (the API refuses the rest anyway)
  linked?: boolean; // reached by links only (from another page), not listed in the navigation
}

const PAGES: Page[] = [
  { hash: "#/connections", title: "PACS connections", view: (me) => <Connections me={me} /> },
  { hash: "#/import", title: "Import", view: (me) => <Import me={me} /> },
  { hash: "#/worklist", title: "Worklist", view: (me) => <Worklist me={me} /> },
  { hash: "#/send", title: "Send", view: (me) => <Send me={me} /> },
  { hash: "#/jobs", title: "Jobs", view: (me) => <Jobs me={me} /> },
  { hash: "#/archive", title: "Archive", view: (me) => <Archive me={me} /> },
  // "#/viewer/{study}/{series}[/{image}]": a series of the archive, opened from the Archive page.
  { hash: "#/viewer", title: "Viewer", view: () => <Viewer />, linked: true },
  { hash: "#/receivers", title: "Receivers", view: (me) => <Receivers me={me} /> },
  { hash: "#/users", title: "Users", view: (me) => <Users me={me} />, role: "admin" },
  { hash: "#/tokens", title: "API tokens", view: (me) => <Tokens me={me} /> },
  { hash: "#/audit", title: "Audit", view: () => <Audit />, role: "admin" },
];

// The pages this account may see.
function pagesFor(me: Me | null | undefined): Page[] {
  return PAGES.filter((p) => !p.role || (me && can(me, p.role)));
}

function currentPage(me?: Me | null): Page {
  const pages = pagesFor(me);
  // "#/jobs/12" is the Jobs page with job 12 open.
  const hash = window.location.hash;
  return pages.find((p) => p.hash === hash || hash.startsWith(p.hash + "/")) ?? pages[0];
}

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [page, setPage] = useState<Page>(currentPage());

  useEffect(() => {
    whenSignedOut(() => setMe(null));
    api<Me>("GET", "/api/auth/me")
      .then((m) => {
        setCsrfToken(m.csrf_token ?? "");
        setMe(m);
      })
      .catch(() => setMe(null));
  }, []);

  // The page follows the address, among those the account may see (an admin page asked for by
  // someone else shows the first page).
  useEffect(() => {
    setPage(currentPage(me));
    const onHash = () => setPage(currentPage(me));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, [me]);

  useEffect(() => {
    document.title = me ? `${page.title} · PACS Bridge` : "Log in · PACS Bridge";
  }, [me, page]);

  if (me === undefined) return <main class="loading" aria-busy="true" />;
  if (me === null) {
    return (
      <Login
        onLoggedIn={(m) => {
          setCsrfToken(m.csrf_token ?? "");
          setMe(m);
        }}
      />
    );
  }

  const logOut = async () => {
    try {
      await api("POST", "/api/auth/logout");
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
    }
    setMe(null);
  };

  return (
    <>
      <header class="top">
        <span class="brand">PACS Bridge</span>
        <nav aria-label="Pages">
          {pagesFor(me)
            .filter((p) => !p.linked)
            .map((p) => (
              <a href={p.hash} aria-current={p === page ? "page" : undefined}>
                {p.title}
              </a>
            ))}
        </nav>
        <span class="who">
          {me.username} <span class="role">({me.role})</span>
          <button type="button" class="link" onClick={logOut}>
            Log out
          </button>
        </span>
      </header>
      <main>{page.view(me)}</main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
