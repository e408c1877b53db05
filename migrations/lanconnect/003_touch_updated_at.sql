-- 003: keep collections.updated_at current with a trigger function.
SET search_path = langconnect, public;

CREATE OR REPLACE FUNCTION langconnect.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS collections_touch_updated_at ON langconnect.collections;
CREATE TRIGGER collections_touch_updated_at
    BEFORE UPDATE ON langconnect.collections
    FOR EACH ROW EXECUTE FUNCTION langconnect.touch_updated_at();
