//! History: the transactions, newest first, filtered by asset and
//! direction, searched by txid, address or memo, exported as CSV.
//!
//! A virtual list over pages: the total of the first page gives the list
//! its height, the pages in view and next to it are asked for as the user
//! scrolls (reading on from a neighbour's cursor, or jumping by position
//! below the list's top), at most [`MAX_PAGES`] are kept and the farthest
//! dropped, and only the rows in view are rendered. The pages where a
//! fast scroll will be in the next frames are asked for ahead (from its
//! speed). A list taller than [`SPACER_CAP`] scrolls a shorter spacer,
//! scaled: WebKitGTK paints every frame of a scroll container whose
//! content is millions of pixels tall three times slower (42–47 ms
//! frames at 5.6 million px, 16 ms at one million; bench/results/app.md).
//! The wheel still moves the rows pixel for pixel; the scroll bar covers
//! the whole list. A new query (the
//! search is debounced) or a change of the wallet's transactions starts a
//! new generation: an answer for an older one is dropped, so a late answer
//! to an old query never overwrites a newer one.
//!
//! Once a generation's first page is in, the list also asks for its index
//! (`notch_ipc::history_index`: time, direction, state and amounts of every
//! row, a few bytes each) and draws a row from it where its page is not
//! there yet, so that a drag of the scroll bar across the whole list shows
//! rows in every frame; the txid and confirmations fill in when the page
//! comes (ADR 11).

use std::collections::BTreeMap;
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use notch_ipc::history_index::HistoryIndexView;
use notch_ipc::{
    AssetView, CommandError, ExportArgs, HistoryArgs, HistoryIndexArgs, HistoryPageView,
    HistoryQuery, HistoryRow, command,
};

use crate::{ctx, ipc, ipc_sleep, local_time};

/// The height of a row, in pixels (the app bench scrolls by it).
const ROW_HEIGHT: f64 = 56.0;
const VIEW_HEIGHT: f64 = 336.0;
/// Rows rendered above and below those in view.
const OVERSCAN: usize = 4;
/// Rows per page asked for.
const PAGE: usize = 100;
/// Pages kept in memory (the others are dropped, and asked for again if
/// the user scrolls back to them).
const MAX_PAGES: usize = 8;
/// The tallest scrolled content, in pixels; a longer list is scaled to it.
const SPACER_CAP: f64 = 1_000_000.0;
/// A moving scroll's next position is taken to be one more step like its
/// last, give or take this share of it (frames are not evenly paced).
const STEP_SPREAD: (f64, f64) = (0.8, 1.25);
/// At most this many pages are asked for ahead of a moving scroll.
const AHEAD_PAGES: usize = 2;
/// Scroll events further apart than this are not one movement.
const STEP_WINDOW_MS: f64 = 100.0;
/// Page requests of one generation under way at once, for the neighbours
/// of the rows in view, and at most for the rows in view themselves.
const IN_FLIGHT: usize = 2;
const IN_FLIGHT_IN_VIEW: usize = 6;
/// How long the search box must rest before the list asks for it.
const SEARCH_DEBOUNCE_MS: i32 = 250;
/// A list longer than this asks for its index (a shorter one has all its
/// pages in memory at once).
const INDEX_FROM_ROWS: u64 = PAGE as u64;

#[derive(Clone)]
struct Page {
    rows: Vec<HistoryRow>,
    next: Option<String>,
    generation: u64,
}

/// The list of the current query, as far as it is known.
#[derive(Clone, Copy)]
struct List {
    /// Moves on every new query or refetch.
    generation: StoredValue<u64>,
    query: StoredValue<HistoryQuery>,
    /// The length of the list (from the generation's first page).
    total: RwSignal<Option<Result<u64, CommandError>>>,
    /// Where the generation's first page began: later pages are asked for
    /// by their position below it.
    top: StoredValue<Option<(u64, Option<String>)>>,
    /// By page number. A refetch shows the pages of the generation before
    /// until its own come in.
    pages: RwSignal<BTreeMap<usize, Page>>,
    /// The index of a generation's rows (the one before's until the new one
    /// comes in, like the pages).
    index: RwSignal<Option<(u64, Arc<HistoryIndexView>)>>,
    /// The wallet's data revision the generation was started at (see
    /// [`LAST_INDEX`]).
    rev: StoredValue<u64>,
    in_flight: StoredValue<Vec<(u64, usize)>>,
    /// Where the view's top is in the whole list, in pixels (rows times
    /// [`ROW_HEIGHT`]), not the spacer's `scrollTop` when it is scaled.
    scroll: RwSignal<f64>,
    /// The last scroll position, when (ms), and how far it was from the
    /// one before (pixels; 0 after a pause).
    motion: StoredValue<Option<(f64, f64, f64)>>,
}

/// The spacer's height and how many pixels of the list one pixel of it
/// scrolls.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Geometry {
    spacer: f64,
    scale: f64,
}

impl Geometry {
    fn of(total: usize) -> Geometry {
        let content = total as f64 * ROW_HEIGHT;
        if content <= SPACER_CAP {
            return Geometry {
                spacer: content,
                scale: 1.0,
            };
        }
        Geometry {
            spacer: SPACER_CAP,
            scale: (content - VIEW_HEIGHT) / (SPACER_CAP - VIEW_HEIGHT),
        }
    }

    /// The list position for the spacer's `scrollTop`.
    fn position(self, scroll_top: f64) -> f64 {
        scroll_top * self.scale
    }

    /// The spacer's `scrollTop` for a list position.
    fn scroll_top(self, position: f64) -> f64 {
        position / self.scale
    }

    /// How far the rows are drawn above their place in the list, so that
    /// the one at `position` is at the top of the view.
    fn shift(self, position: f64) -> f64 {
        position - self.scroll_top(position)
    }
}

/// The pages to ask for with the view's top at `scroll` (list pixels),
/// its last move `step` pixels, in a list of `total` rows (not 0), most
/// wanted first, and how many of them are urgent: those in view and those
/// where a moving scroll will be at its next frame, so that a fling or a
/// drag of the scroll bar finds its rows there, or finds them in the 10–15
/// ms before the frame after it is drawn. Then the neighbours of the view.
fn wanted_pages(scroll: f64, step: f64, total: usize) -> (Vec<usize>, usize) {
    let last_page = total.saturating_sub(1) / PAGE;
    let scroll = scroll.clamp(0.0, max_position(total));
    let first = (scroll / ROW_HEIGHT) as usize;
    let last = (((scroll + VIEW_HEIGHT) / ROW_HEIGHT) as usize).min(total.saturating_sub(1));
    let (from, to) = ((first / PAGE).min(last_page), (last / PAGE).min(last_page));
    let step = if step.is_finite() { step } else { 0.0 };
    // The view's pages first, even for a scroll that jumps past the view
    // each frame: the frame that shows a scroll event's rows is drawn
    // 10–15 ms after it (the app bench's trace of a sweep), which a page
    // asked for at once can make, and where the next step lands is only a
    // guess (frames are not evenly paced). Then that guess; while it
    // jumps, not the neighbours (one request at a time goes through the
    // store).
    let jumping = step.abs() > VIEW_HEIGHT;
    let mut wanted: Vec<usize> = (from..=to).collect();
    if step != 0.0 {
        let max = max_position(total);
        let near = (scroll + step * STEP_SPREAD.0).clamp(0.0, max);
        let far = (scroll + step * STEP_SPREAD.1).clamp(0.0, max);
        let (lo, hi) = (near.min(far), near.max(far) + VIEW_HEIGHT);
        let mut ahead: Vec<usize> = ((lo / ROW_HEIGHT) as usize / PAGE
            ..=((hi / ROW_HEIGHT) as usize / PAGE).min(last_page))
            .collect();
        // The likeliest first: nearest to one more step of the same size.
        let expected = (scroll + step + VIEW_HEIGHT / 2.0) / ROW_HEIGHT / PAGE as f64;
        ahead.sort_by(|a, b| {
            (*a as f64 + 0.5 - expected)
                .abs()
                .total_cmp(&(*b as f64 + 0.5 - expected).abs())
        });
        for k in ahead.into_iter().take(AHEAD_PAGES) {
            if !wanted.contains(&k) {
                wanted.push(k);
            }
        }
    }
    let urgent = wanted.len();
    if jumping {
        return (wanted, urgent);
    }
    // The neighbours, the nearer one first.
    let below = (last + PAGE / 2).min(total.saturating_sub(1)) / PAGE;
    let above = first.saturating_sub(PAGE / 2) / PAGE;
    for k in [below, above, to + 1, from.wrapping_sub(1)] {
        if k <= last_page && !wanted.contains(&k) {
            wanted.push(k);
        }
    }
    (wanted, urgent)
}

/// Appends `[Date.now(), kind, a, b]` to `window.__notchTrace` when a
/// benchmark has set it to an array (it reads when each page was asked for
/// and came in against the frames it checks); otherwise does nothing.
fn trace(kind: &str, a: f64, b: f64) {
    use wasm_bindgen::JsCast;
    let Ok(log) = js_sys::Reflect::get(&js_sys::global(), &"__notchTrace".into()) else {
        return;
    };
    if let Ok(log) = log.dyn_into::<js_sys::Array>() {
        log.push(&js_sys::Array::of4(
            &js_sys::Date::now().into(),
            &kind.into(),
            &a.into(),
            &b.into(),
        ));
    }
}

/// Whether a test has set `window.__notchHoldPages` to `true`: then no page
/// but the first is asked for, so that the real window shows what the list
/// draws while pages are on their way (tests/tests/app_e2e.rs). The page's
/// own `__TAURI__` objects are frozen, so a test cannot delay the answers.
fn pages_held() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"__notchHoldPages".into())
        .is_ok_and(|v| v.as_bool() == Some(true))
}

/// The farthest the view's top goes down a list of `total` rows.
fn max_position(total: usize) -> f64 {
    (total as f64 * ROW_HEIGHT - VIEW_HEIGHT).max(0.0)
}

#[derive(Clone, PartialEq)]
enum Shown {
    Loading,
    Error(String),
    Empty,
    List,
}

impl List {
    fn new() -> List {
        List {
            generation: StoredValue::new(0),
            query: StoredValue::new(HistoryQuery::default()),
            total: RwSignal::new(None),
            top: StoredValue::new(None),
            pages: RwSignal::new(BTreeMap::new()),
            index: RwSignal::new(None),
            rev: StoredValue::new(0),
            in_flight: StoredValue::new(Vec::new()),
            scroll: RwSignal::new(0.0),
            motion: StoredValue::new(None),
        }
    }

    /// The view's top is now at `position` (list pixels): remember it and
    /// how fast it moves, and ask for what it needs.
    fn scrolled_to(self, position: f64) {
        let now = js_sys::Date::now();
        self.motion.update_value(|m| {
            let step = match *m {
                Some((at, when, _)) if now - when <= STEP_WINDOW_MS => position - at,
                _ => 0.0,
            };
            *m = Some((position, now, step));
        });
        trace(
            "scroll",
            position / ROW_HEIGHT,
            self.motion.with_value(|m| m.map_or(0.0, |(_, _, s)| s)) / ROW_HEIGHT,
        );
        self.scroll.set(position);
        self.ensure();
        // When it rests, what is in view (see `wanted_pages`).
        spawn_local(async move {
            crate::ipc_sleep(STEP_WINDOW_MS as i32).await;
            let still = self
                .motion
                .with_value(|m| m.is_some_and(|(_, when, _)| when == now));
            if still {
                self.motion
                    .update_value(|m| *m = m.map(|(at, when, _)| (at, when, 0.0)));
                self.ensure();
            }
        });
    }

    fn total_rows(self) -> usize {
        self.total
            .with_untracked(|t| t.as_ref().map(|t| t.as_ref().copied().unwrap_or(0)))
            .unwrap_or(0) as usize
    }

    /// A new generation: `query` from the top. `keep`: the same query
    /// again (the wallet changed), so the rows on screen stay until the
    /// new ones replace them.
    fn start(self, query: HistoryQuery, keep: bool, rev: u64) {
        self.generation.update_value(|g| *g += 1);
        self.rev.set_value(rev);
        self.query.set_value(query);
        self.in_flight.set_value(Vec::new());
        if !keep {
            self.pages.set(BTreeMap::new());
            self.index.set(None);
            self.total.set(None);
            self.scroll.set(0.0);
            self.motion.set_value(None);
        }
        self.fetch(0);
    }

    /// Asks for page `k` of the current generation, if there is a way to
    /// name it yet.
    fn fetch(self, k: usize) {
        if k > 0 && pages_held() {
            return;
        }
        let generation = self.generation.get_value();
        let (before, skip) = if k == 0 {
            (None, 0)
        } else {
            let after_previous = self.pages.with_untracked(|p| {
                p.get(&(k - 1))
                    .filter(|p| p.generation == generation)
                    .and_then(|p| p.next.clone())
            });
            match (after_previous, self.top.get_value()) {
                (Some(next), _) => (Some(next), 0),
                (None, Some((g, top))) if g == generation => (top, (k * PAGE) as u64),
                // Not before the first page of this generation is in.
                _ => return,
            }
        };
        self.in_flight.update_value(|f| f.push((generation, k)));
        trace("req", k as f64, skip as f64);
        let args = HistoryArgs {
            query: self.query.get_value(),
            before,
            skip,
            limit: Some(PAGE as u32),
        };
        spawn_local(async move {
            let answer =
                ipc::call::<_, HistoryPageView>(command::HISTORY, &args, ipc::DEFAULT_TIMEOUT_MS)
                    .await;
            self.in_flight
                .update_value(|f| f.retain(|x| *x != (generation, k)));
            if self.generation.get_value() != generation {
                return;
            }
            match answer {
                Ok(page) => {
                    trace("ans", k as f64, page.rows.len() as f64);
                    if k == 0 {
                        self.top.set_value(Some((generation, page.top.clone())));
                        self.total.set(Some(Ok(page.total)));
                        if page.total > INDEX_FROM_ROWS {
                            self.fetch_index(generation, page.top.clone());
                        } else {
                            self.index.set(None);
                        }
                    }
                    let (center, step) = self.keep_around();
                    self.pages.update(|pages| {
                        pages.insert(
                            k,
                            Page {
                                rows: page.rows,
                                next: page.next,
                                generation,
                            },
                        );
                        while pages.len() > MAX_PAGES {
                            // The farthest, and of two as far the one the
                            // scroll moves away from.
                            let farthest = pages
                                .keys()
                                .copied()
                                .max_by_key(|p| {
                                    let behind =
                                        (step > 0.0 && *p < center) || (step < 0.0 && *p > center);
                                    (p.abs_diff(center), behind)
                                })
                                .unwrap_or(k);
                            pages.remove(&farthest);
                            trace("drop", farthest as f64, 0.0);
                        }
                    });
                    self.ensure();
                }
                Err(e) => self.total.set(Some(Err(e))),
            }
        });
    }

    /// Asks for the index of `generation`'s rows from `top`; drops the
    /// answer if a newer generation has begun, keeps the index it has if
    /// the answer is an error (the rows still come by pages).
    fn fetch_index(self, generation: u64, top: Option<String>) {
        let key = (self.query.get_value(), top.clone(), self.rev.get_value());
        let kept = LAST_INDEX.with(|last| {
            last.borrow()
                .as_ref()
                .filter(|(k, _)| *k == key)
                .map(|(_, index)| index.clone())
        });
        if let Some(index) = kept {
            trace("ikept", index.len() as f64, index.byte_len() as f64);
            self.index.set(Some((generation, index)));
            return;
        }
        let args = HistoryIndexArgs {
            query: self.query.get_value(),
            top,
        };
        trace("ireq", 0.0, 0.0);
        spawn_local(async move {
            let answer =
                ipc::call_bytes(command::HISTORY_INDEX, &args, ipc::DEFAULT_TIMEOUT_MS).await;
            if self.generation.get_value() != generation {
                return;
            }
            match answer.map(HistoryIndexView::parse) {
                Ok(Some(index)) => {
                    trace("ians", index.len() as f64, index.byte_len() as f64);
                    let index = Arc::new(index);
                    LAST_INDEX.with(|last| *last.borrow_mut() = Some((key, index.clone())));
                    self.index.set(Some((generation, index)));
                }
                Ok(None) => {
                    leptos::logging::warn!("the app sent a history index that does not parse")
                }
                Err(e) => leptos::logging::warn!("history index: {}", e.message),
            }
        });
    }

    /// What the list draws at row `i`: its page's row, else its index row,
    /// else a placeholder.
    fn row_at(self, i: usize, pages: &BTreeMap<usize, Page>) -> Drawn {
        if let Some(row) = pages.get(&(i / PAGE)).and_then(|p| p.rows.get(i % PAGE)) {
            return Drawn::Full(row.clone());
        }
        self.index.with(
            |index| match index.as_ref().and_then(|(_, index)| index.row(i)) {
                Some(r) => Drawn::Indexed(IndexedRow {
                    time: r.time,
                    incoming: r.incoming,
                    state: r.state,
                    amounts: r.amounts.to_owned(),
                }),
                None => Drawn::Missing,
            },
        )
    }

    /// The page the kept pages are chosen around: the middle of the view,
    /// or of a moving scroll's view and where its next step lands (what it
    /// asked for ahead must not be dropped for what it is leaving); and the
    /// last step.
    fn keep_around(self) -> (usize, f64) {
        let step = self
            .motion
            .with_value(|m| m.map(|(_, _, step)| step).unwrap_or(0.0));
        let step = if step.is_finite() { step } else { 0.0 };
        let middle = (self.scroll.get_untracked() + step / 2.0 + VIEW_HEIGHT / 2.0) / ROW_HEIGHT;
        (middle.max(0.0) as usize / PAGE, step)
    }

    /// Asks for the pages in view, then their neighbours, that are not
    /// there or on their way.
    fn ensure(self) {
        let total = self.total_rows();
        if total == 0 {
            return;
        }
        let step = self
            .motion
            .with_value(|m| m.map(|(_, _, step)| step).unwrap_or(0.0));
        let (wanted, urgent) = wanted_pages(self.scroll.get_untracked(), step, total);
        let generation = self.generation.get_value();
        for (n, k) in wanted.into_iter().enumerate() {
            let busy = self.in_flight.with_value(|f| {
                (
                    f.iter().filter(|(g, _)| *g == generation).count(),
                    f.contains(&(generation, k)),
                )
            });
            // The pages in view and those a moving scroll is about to show
            // are asked for even past the limit: those under way may be for
            // rows a fast scroll has already left. The neighbours wait for
            // a free place.
            let limit = if n < urgent {
                IN_FLIGHT_IN_VIEW
            } else {
                IN_FLIGHT
            };
            if busy.0 >= limit {
                trace("full", k as f64, busy.0 as f64);
                return;
            }
            let have = self
                .pages
                .with_untracked(|p| p.get(&k).is_some_and(|p| p.generation == generation));
            if !have && !busy.1 {
                self.fetch(k);
            }
        }
    }
}

#[component]
pub fn History() -> impl IntoView {
    let cx = ctx();
    let asset = RwSignal::new(String::new());
    let direction = RwSignal::new(String::new());
    // What the box shows, and what the list asks for once it rests.
    let typed = RwSignal::new(String::new());
    let search = RwSignal::new(String::new());
    let keystrokes = StoredValue::new(0u64);
    let assets = RwSignal::new(Vec::<AssetView>::new());
    let export_path = RwSignal::new(String::new());
    let exported = RwSignal::new(None::<Result<String, CommandError>>);
    let list = List::new();

    spawn_local(async move {
        if let Ok(list) = ipc::call0::<Vec<AssetView>>(command::ASSETS).await {
            assets.set(list);
        }
    });

    let query_of = move |search: String| HistoryQuery {
        asset: Some(asset.get()).filter(|a| !a.is_empty()),
        incoming: match direction.get().as_str() {
            "in" => Some(true),
            "out" => Some(false),
            _ => None,
        },
        search: Some(search).filter(|s| !s.trim().is_empty()),
    };
    // A new generation for a new query, and for the same one again when the
    // wallet's transactions change (not on every sync pass).
    Effect::new(move |previous: Option<HistoryQuery>| {
        cx.data_rev.get();
        let q = query_of(search.get());
        let rev = cx.data_rev.get();
        list.start(q.clone(), previous.as_ref() == Some(&q), rev);
        q
    });
    let on_search = move |ev| {
        let text = event_target_value(&ev);
        typed.set(text.clone());
        keystrokes.update_value(|n| *n += 1);
        let mine = keystrokes.get_value();
        spawn_local(async move {
            ipc_sleep(SEARCH_DEBOUNCE_MS).await;
            if keystrokes.get_value() == mine {
                search.set(text);
            }
        });
    };
    let export = move |_| {
        let q = untrack(|| query_of(typed.get()));
        let path = Some(export_path.get_untracked()).filter(|p| !p.trim().is_empty());
        exported.set(None);
        spawn_local(async move {
            exported.set(Some(
                ipc::call::<_, String>(
                    command::EXPORT_CSV,
                    &ExportArgs { query: q, path },
                    ipc::LONG_TIMEOUT_MS,
                )
                .await,
            ));
        });
    };
    let shown = Memo::new(move |_| match list.total.get() {
        None => Shown::Loading,
        Some(Err(e)) => Shown::Error(e.message),
        Some(Ok(0)) => Shown::Empty,
        Some(Ok(_)) => Shown::List,
    });
    let total = move || match list.total.get() {
        Some(Ok(n)) => n as usize,
        _ => 0,
    };
    let geometry = Memo::new(move |_| Geometry::of(total()));
    let geometry = move || geometry.get();

    view! {
        <h2>"History"</h2>
        <section class="card wide">
            <div class="filters">
                <select data-testid="history-asset" on:change=move |ev| asset.set(event_target_value(&ev))>
                    <option value="">"All assets"</option>
                    {move || assets.get().into_iter().map(|a| view! { <option value=a.symbol.clone()>{a.symbol.clone()}</option> }).collect_view()}
                </select>
                <select data-testid="history-direction" on:change=move |ev| direction.set(event_target_value(&ev))>
                    <option value="">"In and out"</option>
                    <option value="in">"Received"</option>
                    <option value="out">"Sent"</option>
                </select>
                <input type="search" placeholder="Search txid, address or memo" data-testid="history-search"
                    prop:value=move || typed.get() on:input=on_search />
            </div>
            {move || match shown.get() {
                Shown::Loading => view! { <p>"Loading…"</p> }.into_any(),
                Shown::Error(message) => view! { <p class="error" data-testid="history-error">{message}</p> }.into_any(),
                Shown::Empty => view! { <p class="muted" data-testid="history-empty">"No transactions yet."</p> }.into_any(),
                Shown::List => view! {
                    <p class="muted" data-testid="history-count">{total} " transactions"</p>
                    <div class="vlist" data-testid="history-list" style=format!("height:{VIEW_HEIGHT}px")
                        data-scale=move || geometry().scale.to_string()
                        on:scroll=move |ev| {
                            use wasm_bindgen::JsCast;
                            let Some(el) = ev.target().map(|t| t.unchecked_into::<web_sys::Element>()) else { return };
                            let g = geometry();
                            let top = f64::from(el.scroll_top());
                            // A scroll the wheel handler made leaves the
                            // position it set; any other (the scroll bar, the
                            // keyboard, a script) says where the view is.
                            if (g.scroll_top(list.scroll.get_untracked()) - top).abs() >= 1.0 {
                                list.scrolled_to(g.position(top).min(max_position(total())));
                            }
                        }
                        on:wheel=move |ev: leptos::ev::WheelEvent| {
                            let g = geometry();
                            if g.scale == 1.0 {
                                return;
                            }
                            // Scaled, the browser's own wheel scroll would
                            // move the rows `scale` times too far.
                            ev.prevent_default();
                            let delta = match ev.delta_mode() {
                                1 => ev.delta_y() * ROW_HEIGHT,
                                2 => ev.delta_y() * VIEW_HEIGHT,
                                _ => ev.delta_y(),
                            };
                            let position = (list.scroll.get_untracked() + delta).clamp(0.0, max_position(total()));
                            list.scrolled_to(position);
                            use wasm_bindgen::JsCast;
                            if let Some(el) = ev.current_target().map(|t| t.unchecked_into::<web_sys::Element>()) {
                                el.set_scroll_top(g.scroll_top(position).round() as i32);
                            }
                        }>
                        <div style=move || format!("height:{}px;position:relative", geometry().spacer)>
                            // Rows are placed at their place in the whole list,
                            // inside a layer drawn `shift` pixels higher.
                            <div style=move || format!("position:absolute;left:0;right:0;top:{}px", -geometry().shift(list.scroll.get()))>
                            // Keyed by position and content: a scroll by one row
                            // adds one row and removes one, and a page that comes in
                            // replaces only its placeholders. (Rendering the whole
                            // window again on each scroll event made 50 ms frames.)
                            <For
                                each=move || {
                                    let total = total();
                                    let first = ((list.scroll.get() / ROW_HEIGHT).max(0.0).floor() as usize).saturating_sub(OVERSCAN);
                                    let shown = (VIEW_HEIGHT / ROW_HEIGHT).ceil() as usize + 2 * OVERSCAN;
                                    let end = (first + shown).min(total);
                                    list.pages.with(|pages| {
                                        (first.min(end)..end)
                                            .map(|i| (i, list.row_at(i, pages)))
                                            .collect::<Vec<_>>()
                                    })
                                }
                                key=|(i, row)| (*i, row.key())
                                children=|(i, row)| match row {
                                    Drawn::Full(r) => row_view(i, r).into_any(),
                                    Drawn::Indexed(r) => indexed_row_view(i, r).into_any(),
                                    Drawn::Missing => placeholder(i).into_any(),
                                }
                            />
                            </div>
                        </div>
                    </div>
                }.into_any(),
            }}
            <div class="export row">
                <input type="text" placeholder="File path (default: the wallet's data directory)" data-testid="history-export-path"
                    prop:value=move || export_path.get() on:input=move |ev| export_path.set(event_target_value(&ev)) />
                <button data-testid="history-export" on:click=export>"Export CSV"</button>
            </div>
            {move || exported.get().map(|r| match r {
                Ok(path) => view! { <p class="ok" data-testid="history-export-result">"Written to " <code>{path}</code></p> }.into_any(),
                Err(e) => view! { <p class="error" data-testid="history-export-result">{e.message}</p> }.into_any(),
            })}
        </section>
    }
}

/// What an index is of: a query, the top its positions count from, and
/// the wallet's data revision.
type IndexKey = (HistoryQuery, Option<String>, u64);

thread_local! {
    /// The last index the app sent, for the screen opened again with
    /// nothing changed (Home and back): not asked for, built and sent
    /// again. One is kept, so memory stays that of one index.
    static LAST_INDEX: std::cell::RefCell<Option<(IndexKey, Arc<HistoryIndexView>)>> =
        const { std::cell::RefCell::new(None) };
}

/// What the list draws at one position.
#[derive(Clone)]
enum Drawn {
    /// From its page.
    Full(HistoryRow),
    /// From the index, its page not there.
    Indexed(IndexedRow),
    /// Neither there yet.
    Missing,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum DrawnKey {
    Full(String, String, u64),
    Indexed(u64, bool, &'static str, String),
    Missing,
}

impl Drawn {
    /// A row is drawn again only when what it shows changes.
    fn key(&self) -> DrawnKey {
        match self {
            Drawn::Full(r) => DrawnKey::Full(r.txid.clone(), r.state.clone(), r.confirmations),
            Drawn::Indexed(r) => DrawnKey::Indexed(r.time, r.incoming, r.state, r.amounts.clone()),
            Drawn::Missing => DrawnKey::Missing,
        }
    }
}

#[derive(Clone)]
struct IndexedRow {
    time: u64,
    incoming: bool,
    state: &'static str,
    amounts: String,
}

/// A row drawn from the index: as [`row_view`] draws it, with its txid and
/// confirmations still to come.
fn indexed_row_view(i: usize, r: IndexedRow) -> impl IntoView {
    view! {
        <div class="hrow indexed" data-testid=format!("history-indexrow-{i}")
            style=format!("top:{}px;height:{}px", i as f64 * ROW_HEIGHT, ROW_HEIGHT)>
            <span class=if r.incoming { "dir in" } else { "dir out" }>
                {if r.incoming { "In" } else { "Out" }}
            </span>
            <span class="hmain">
                <span class="num">{r.amounts}</span>
                <small class="muted address">"…"</small>
            </span>
            <span class="hside">
                <span class=format!("state {}", r.state)>{r.state.replace('_', " ")}</span>
                <small class="muted"></small>
                <small class="muted">{local_time(r.time)}</small>
            </span>
        </div>
    }
}

/// A row whose page is on its way.
fn placeholder(i: usize) -> impl IntoView {
    view! {
        <div class="hrow placeholder" data-testid=format!("history-placeholder-{i}")
            style=format!("top:{}px;height:{}px", i as f64 * ROW_HEIGHT, ROW_HEIGHT)>
            <span class="muted">"…"</span>
        </div>
    }
}

fn row_view(i: usize, r: HistoryRow) -> impl IntoView {
    let amounts = notch_ipc::history_index::amounts_text(
        r.amounts
            .iter()
            .map(|a| (a.net.as_str(), a.symbol.as_str())),
    );
    let height = crate::ctx().height;
    let stored = r.confirmations;
    let block = r.block_height;
    // Counted from the block and the synced height, so it follows the tip
    // without a refetch.
    let confirmations = move || {
        let n = match (block, height.get()) {
            (Some(b), Some(h)) if h >= b => (h - b + 1).max(stored),
            _ => stored,
        };
        if n > 0 {
            format!("{n} conf.")
        } else {
            String::new()
        }
    };
    view! {
        <div class="hrow" data-testid=format!("history-row-{i}") data-txid=r.txid.clone()
            style=format!("top:{}px;height:{}px", i as f64 * ROW_HEIGHT, ROW_HEIGHT)>
            <span class=if r.incoming { "dir in" } else { "dir out" } data-testid=format!("history-dir-{i}")>
                {if r.incoming { "In" } else { "Out" }}
            </span>
            <span class="hmain">
                <span class="num" data-testid=format!("history-amount-{i}")>{amounts}</span>
                <small class="muted address">{r.txid.clone()}</small>
            </span>
            <span class="hside">
                <span data-testid=format!("history-state-{i}") class=format!("state {}", r.state)>{r.state.replace('_', " ")}</span>
                <small class="muted" data-testid=format!("history-conf-{i}")>{confirmations}</small>
                <small class="muted">{local_time(r.time)}</small>
            </span>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_list_is_not_scaled() {
        let g = Geometry::of(1_000);
        assert_eq!(g.scale, 1.0);
        assert_eq!(g.spacer, 56_000.0);
        assert_eq!(g.shift(30_000.0), 0.0);
        assert_eq!(g.scroll_top(30_000.0), 30_000.0);
    }

    #[test]
    fn a_long_list_scrolls_a_capped_spacer_end_to_end() {
        let total = 100_000;
        let g = Geometry::of(total);
        assert_eq!(g.spacer, SPACER_CAP);
        assert!(g.scale > 5.0 && g.scale < 6.0, "{}", g.scale);
        // The spacer's last scroll position shows the list's last rows.
        let end = g.position(SPACER_CAP - VIEW_HEIGHT);
        assert!((end - max_position(total)).abs() < 1e-6, "{end}");
        // The row at the view's top is drawn at the spacer's scrollTop.
        for position in [0.0, 56.0 * 12_345.0, max_position(total)] {
            let drawn = position - g.shift(position);
            assert!((drawn - g.scroll_top(position)).abs() < 1e-6);
            assert!(drawn >= 0.0 && drawn + VIEW_HEIGHT <= SPACER_CAP + 1e-6);
        }
    }

    #[test]
    fn a_still_view_wants_its_pages_then_their_neighbours() {
        // Rows 150..156 in view: page 1, then 2 (below) and 0 (above).
        let (wanted, urgent) = wanted_pages(150.0 * ROW_HEIGHT, 0.0, 10_000);
        assert_eq!(urgent, 1);
        assert_eq!(wanted, vec![1, 2, 0]);
    }

    #[test]
    fn a_fast_scroll_wants_where_it_will_be_next() {
        // 100,000 rows in 3 s at 16 ms frames: about 533 rows a step.
        let step = 533.0 * ROW_HEIGHT;
        let at = 10_000.0 * ROW_HEIGHT;
        let (wanted, urgent) = wanted_pages(at, step, 100_000);
        // One more step of the same size lands in page 105; a step 20 %
        // shorter or 25 % longer in pages 104 and 106. Page 100, where it
        // is now, first: its rows are drawn before the next step.
        assert_eq!(wanted[..2], [100, 105], "{wanted:?}");
        assert!(wanted.contains(&104) || wanted.contains(&106), "{wanted:?}");
        assert_eq!(urgent, wanted.len());
        assert!(urgent <= 1 + AHEAD_PAGES, "{wanted:?}");
        // A slow scroll still wants its view first.
        let (wanted, _) = wanted_pages(at, 3.0 * ROW_HEIGHT, 100_000);
        assert_eq!(wanted[0], 100);
        // Upwards too, and never past either end.
        let (wanted, _) = wanted_pages(20_000.0 * ROW_HEIGHT, -step, 100_000);
        assert_eq!(wanted[..2], [200, 194], "{wanted:?}");
        let (wanted, _) = wanted_pages(100.0 * ROW_HEIGHT, -step, 100_000);
        assert!(wanted.contains(&0));
        let (wanted, _) = wanted_pages(max_position(100_000), step, 100_000);
        assert!(wanted.iter().all(|k| *k <= 999), "{wanted:?}");
        let (wanted, urgent) = wanted_pages(0.0, f64::NAN, 5);
        assert_eq!((wanted, urgent), (vec![0], 1));
    }
}
