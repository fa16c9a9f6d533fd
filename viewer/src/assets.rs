//! The page, compiled into the binary: plain HTML, CSS and JavaScript, with no third-party
//! code, nothing fetched from elsewhere (lab machines are often offline) and no build step.

/// The page.
pub(crate) const INDEX_HTML: &str = include_str!("../assets/index.html");
/// Its script: the WebSocket client, the images, plots and tables.
pub(crate) const VIEW_JS: &str = include_str!("../assets/view.js");
/// Its style sheet.
pub(crate) const VIEW_CSS: &str = include_str!("../assets/view.css");
