-- Every change to a key's row or to its versions tells the replicas, once it commits, which
-- key to reload into their in-memory catalogs (`catalog::sync`). A trigger rather than a
-- NOTIFY beside each write: no write path can forget it, an operator's own SQL included.
-- PostgreSQL delivers a transaction's notifications only after its commit, and folds repeats
-- of one key within it into one.

CREATE FUNCTION keygate_catalog_changed() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'keys' THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('keygate_catalog', OLD.id);
        ELSE
            PERFORM pg_notify('keygate_catalog', NEW.id);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('keygate_catalog', OLD.key_id);
    ELSE
        PERFORM pg_notify('keygate_catalog', NEW.key_id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE ON keys
    FOR EACH ROW EXECUTE FUNCTION keygate_catalog_changed();
CREATE TRIGGER key_versions_changed AFTER INSERT OR UPDATE OR DELETE ON key_versions
    FOR EACH ROW EXECUTE FUNCTION keygate_catalog_changed();
