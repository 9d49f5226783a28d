//! Backups on a timer: [`BackupManager::run_schedule`].

use super::{
    error::BackupError,
    manager::{BackupManager, BackupReport},
};

impl BackupManager<'_> {
    /// Backs up every `interval` (the first run at once) and prunes, until
    /// `runs` backups were attempted (`None` = forever). A failed run is
    /// reported to `on_run` and the schedule goes on.
    pub async fn run_schedule(
        &self,
        runs: Option<usize>,
        mut on_run: impl FnMut(&Result<BackupReport, BackupError>),
    ) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut done = 0;
        while runs.is_none_or(|n| done < n) {
            ticker.tick().await;
            let r = self.backup_now().await;
            on_run(&r);
            done += 1;
        }
    }
}
