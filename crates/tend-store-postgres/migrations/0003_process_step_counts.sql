-- The console's Processes page counts each step's touches by state and held reason,
-- and the conversions each step was the last touch before, from one process's index
-- entries and the conversion stage's history rows (SQLite's 0010).
CREATE INDEX touches_process_step ON touches (process_id, step, kind, state, reason);
CREATE INDEX stage_history_to_stage ON stage_history (to_stage, contact_id, at);
