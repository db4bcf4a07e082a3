-- Mornings of weekends and holidays are learned apart from working days' (alerts/profile.py):
-- one who sleeps in on Sundays gets a later morning window on Sundays only. The mornings
-- already learned stay in first_activity_s, now the working days' list; the weekend days
-- among them age out within the 28 days it keeps.

ALTER TABLE home_profiles ADD COLUMN rest_first_activity_s integer[] NOT NULL DEFAULT '{}';
