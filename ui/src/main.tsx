import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { api, ApiError, Me, setCsrfToken, whenSignedOut } from "./api";
import { Archive } from "./pages/Archive";
import { Connections } from "./pages/Connections";
import { Import } from "./pages/Import";
import { Jobs } from "./pages/Jobs";
import { Login } from "./pages/Login";
import { Send } from "./pages/Send";
import "./styles.css";

interface Page {
  hash: string;
  title: string;
  view: (me: Me) => preact.JSX.Element;
}

const PAGES: Page[] = [
  { hash: "#/connections", title: "PACS connections", view: (me) => <Connections me={me} /> },
  { hash: "#/import", title: "Import", view: (me) => <Import me={me} /> },
  { hash: "#/send", title: "Send", view: (me) => <Send me={me} /> },
  { hash: "#/jobs", title: "Jobs", view: (me) => <Jobs me={me} /> },
  { hash: "#/archive", title: "Archive", view: () => <Archive /> },
];

function currentPage(): Page {
  return PAGES.find((p) => p.hash === window.location.hash) ?? PAGES[0];
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
    const onHash = () => setPage(currentPage());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

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
          {PAGES.map((p) => (
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
