//! Progress bars on a terminal: one per image being copied, and one for all bytes.

use std::collections::HashMap;
use std::sync::Mutex;

use ferry::copy::progress::Progress;
use ferry::reference::ImageRef;
use ferry::report::{ImageReport, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    images: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        let multi = MultiProgress::new();
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template("{prefix:>8.bold} {bar:30.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        total.set_prefix("total");
        Bars {
            multi,
            total,
            images: Mutex::new(HashMap::new()),
        }
    }

    pub fn finish(&self) {
        self.total.finish_and_clear();
    }
}

impl Progress for Bars {
    fn image_started(&self, source: &ImageRef, total_bytes: u64) {
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new(total_bytes));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} {bar:30} {bytes}/{total_bytes} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix("copying");
        bar.set_message(source.to_string());
        self.total.inc_length(total_bytes);
        self.images
            .lock()
            .expect("bars")
            .insert(source.to_string(), bar);
    }

    fn advanced(&self, source: &ImageRef, bytes: u64) {
        if let Some(bar) = self.images.lock().expect("bars").get(&source.to_string()) {
            bar.inc(bytes);
        }
        self.total.inc(bytes);
    }

    fn image_finished(&self, report: &ImageReport) {
        if let Some(bar) = self.images.lock().expect("bars").remove(&report.source) {
            // Blobs that were skipped or mounted count as done.
            let rest = bar.length().unwrap_or(0).saturating_sub(bar.position());
            self.total.inc(rest);
            bar.finish_and_clear();
        }
        let line = crate::output::image_line(report);
        let _ = self.multi.println(line);
        if report.status == Status::Failed {
            self.total.set_message("(failures)");
        }
    }
}
