-- What a resident asks for on a home visit (微心愿): one optional text of a visit's check-in,
-- beside its note. Nullable and without a default, so adding it rewrites nothing (a
-- compressed TimescaleDB hypertable takes it as it is).
ALTER TABLE patrol_checkins ADD COLUMN needs text;
