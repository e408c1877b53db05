-- client 001: this client's per-user preferences.
SET search_path = langconnect, public;

CREATE TABLE IF NOT EXISTS langconnect.user_preferences (
    user_id     uuid PRIMARY KEY,
    theme       text NOT NULL DEFAULT 'light',
    language    text NOT NULL DEFAULT 'en',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

DROP TRIGGER IF EXISTS user_preferences_touch_updated_at ON langconnect.user_preferences;
CREATE TRIGGER user_preferences_touch_updated_at
    BEFORE UPDATE ON langconnect.user_preferences
    FOR EACH ROW EXECUTE FUNCTION langconnect.touch_updated_at();
