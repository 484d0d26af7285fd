-- plex-pg: what translated SQLite statements rely on, created in each
-- routed schema (search_path is that schema). Statements are separated by
-- lines holding only ";;". See bootstrap.rs and docs/sql-support.md.

-- Collations standing for SQLite's (see collation.rs).
CREATE COLLATION IF NOT EXISTS sqlite_nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false)
;;
CREATE COLLATION IF NOT EXISTS sqlite_icu_root (provider = icu, locale = 'und')
;;
CREATE COLLATION IF NOT EXISTS sqlite_naturalsort (provider = icu, locale = 'und-u-kn-true')
;;
-- PRAGMA user_version / application_id.
CREATE TABLE IF NOT EXISTS sqlite__pragma (name text PRIMARY KEY, value bigint NOT NULL)
;;
-- The name a SQLite CREATE text gives its object (unquoted).
CREATE OR REPLACE FUNCTION sqlite_object_name(sql text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT CASE WHEN n ~ '^["`\['']' THEN replace(substr(n, 2, char_length(n) - 2), '""', '"') ELSE n END
  FROM (SELECT (regexp_match(sql, '^CREATE\s+(?:UNIQUE\s+|VIRTUAL\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\s+("(?:[^"]|"")+"|''(?:[^'']|'''')+''|\[[^\]]+\]|`[^`]+`|[^\s(]+)', 'i'))[1] AS n) x
$$
;;
-- sqlite_master: every object whose comment is its SQLite text; names as
-- that text writes them (PostgreSQL's are lowercased, long ones shortened).
CREATE OR REPLACE VIEW sqlite_master AS
SELECT o.type, o.name, o.tbl_name, o.rootpage, o.sql FROM (
  SELECT CASE WHEN c.relkind = 'i' THEN 'index'
              WHEN c.relkind = 'v' AND d.description NOT LIKE 'CREATE TABLE %' THEN 'view'
              ELSE 'table' END::text AS type,
         sqlite_object_name(d.description) AS name,
         coalesce(sqlite_object_name(obj_description(t.oid, 'pg_class')), sqlite_object_name(d.description)) AS tbl_name,
         c.oid::bigint AS rootpage,
         d.description AS sql,
         c.oid AS sort_key
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
  JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
  LEFT JOIN pg_index i ON i.indexrelid = c.oid
  LEFT JOIN pg_class t ON t.oid = i.indrelid
  WHERE c.relkind IN ('r', 'p', 'i', 'v') AND d.description LIKE 'CREATE %'
  UNION ALL
  SELECT 'trigger'::text, sqlite_object_name(d.description), sqlite_object_name(obj_description(c.oid, 'pg_class')), 0::bigint, d.description, tg.oid
  FROM pg_trigger tg
  JOIN pg_class c ON c.oid = tg.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
  JOIN pg_description d ON d.objoid = tg.oid AND d.classoid = 'pg_trigger'::regclass
  WHERE NOT tg.tgisinternal
) o ORDER BY o.sort_key
;;
CREATE OR REPLACE VIEW sqlite_schema AS SELECT * FROM sqlite_master
;;
-- Their declared types, as SQLite declares its schema table.
DO $$
DECLARE
  v text;
BEGIN
  FOREACH v IN ARRAY ARRAY['sqlite_master', 'sqlite_schema'] LOOP
    EXECUTE format('COMMENT ON COLUMN %I.type IS %L', v, 'TEXT');
    EXECUTE format('COMMENT ON COLUMN %I.name IS %L', v, 'TEXT');
    EXECUTE format('COMMENT ON COLUMN %I.tbl_name IS %L', v, 'TEXT');
    EXECUTE format('COMMENT ON COLUMN %I.rootpage IS %L', v, 'INT');
    EXECUTE format('COMMENT ON COLUMN %I.sql IS %L', v, 'TEXT');
  END LOOP;
END
$$
;;
CREATE OR REPLACE VIEW sqlite_temp_master AS SELECT * FROM sqlite_master WHERE false
;;
CREATE OR REPLACE VIEW sqlite_temp_schema AS SELECT * FROM sqlite_master WHERE false
;;
-- PRAGMA table_info(t).
CREATE OR REPLACE FUNCTION sqlite_table_info(tbl text)
RETURNS TABLE (cid bigint, name text, type text, "notnull" integer, dflt_value text, pk integer)
LANGUAGE sql STABLE AS $$
  SELECT (row_number() OVER (ORDER BY a.attnum) - 1)::bigint,
         a.attname::text,
         split_part(coalesce(col_description(c.oid, a.attnum), ''), chr(31), 1),
         CASE WHEN a.attnotnull THEN 1 ELSE 0 END,
         CASE WHEN strpos(coalesce(col_description(c.oid, a.attnum), ''), chr(31)) > 0
              THEN substr(col_description(c.oid, a.attnum), strpos(col_description(c.oid, a.attnum), chr(31)) + 1) END,
         coalesce((SELECT k.o FROM unnest(p.indkey) WITH ORDINALITY AS k(n, o) WHERE k.n = a.attnum), 0)::integer
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_index p ON p.indrelid = c.oid AND p.indisprimary
  WHERE c.relname = tbl AND a.attname NOT LIKE 'sqlite\_\_%'
  ORDER BY a.attnum
$$
;;
-- PRAGMA index_list(t): the rowid's own key and hidden indexes are not SQLite's.
CREATE OR REPLACE FUNCTION sqlite_index_list(tbl text)
RETURNS TABLE (seq bigint, name text, "unique" integer, origin text, partial integer)
LANGUAGE sql STABLE AS $$
  SELECT (row_number() OVER (ORDER BY ic.oid DESC) - 1)::bigint,
         ic.relname::text,
         CASE WHEN i.indisunique THEN 1 ELSE 0 END,
         CASE WHEN i.indisprimary THEN 'pk'
              WHEN EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ic.oid) THEN 'u'
              ELSE 'c' END,
         CASE WHEN i.indpred IS NULL THEN 0 ELSE 1 END
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
  JOIN pg_index i ON i.indrelid = c.oid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  WHERE c.relname = tbl AND ic.relname NOT LIKE 'sqlite\_\_%'
    AND NOT (i.indisprimary AND i.indnatts = 1 AND upper(split_part(coalesce(col_description(c.oid, i.indkey[0]), ''), chr(31), 1)) = 'INTEGER')
  ORDER BY ic.oid DESC
$$
;;
-- PRAGMA index_info(i).
CREATE OR REPLACE FUNCTION sqlite_index_info(idx text)
RETURNS TABLE (seqno bigint, cid bigint, name text)
LANGUAGE sql STABLE AS $$
  SELECT (k.o - 1)::bigint,
         CASE WHEN k.n = 0 THEN -2 ELSE
           (SELECT count(*) FROM pg_attribute b WHERE b.attrelid = i.indrelid AND b.attnum > 0 AND b.attnum < k.n
              AND NOT b.attisdropped AND b.attname NOT LIKE 'sqlite\_\_%') END::bigint,
         a.attname::text
  FROM pg_class ic
  JOIN pg_namespace n ON n.oid = ic.relnamespace AND n.nspname = current_schema()
  JOIN pg_index i ON i.indexrelid = ic.oid
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(n, o)
  LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
  WHERE ic.relname = idx
  ORDER BY k.o
$$
;;
-- CREATE TABLE … AS: declared types from the new columns' types.
CREATE OR REPLACE FUNCTION sqlite_describe_ctas(tbl text, types json, plain boolean[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  col record;
  defs text[] := '{}';
  declared text;
  i int := 0;
BEGIN
  FOR col IN
    SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS pg_type
    FROM pg_attribute a WHERE a.attrelid = (quote_ident(current_schema()) || '.' || quote_ident(tbl))::regclass
      AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
  LOOP
    i := i + 1;
    declared := CASE WHEN coalesce(plain[i], true) THEN coalesce(types ->> col.pg_type, '') ELSE '' END;
    IF declared <> '' THEN
      EXECUTE format('COMMENT ON COLUMN %I.%I IS %L', tbl, col.name, declared);
    END IF;
    defs := defs || btrim(col.name || ' ' || declared);
  END LOOP;
  EXECUTE format('COMMENT ON TABLE %I IS %L', tbl, 'CREATE TABLE ' || tbl || '(' || array_to_string(defs, ',') || ')');
END
$$
;;
-- A REAL as SQLite prints it ("%!.15g"): 15 significant digits, always a
-- point or an exponent ('1.0', '10000000000.0', '1.0e+15', '2.5e-07');
-- float8's own text is the shortest that reads back ('1', '1e+15').
-- float8 -> numeric keeps 15 significant digits (DBL_DIG), as %.15g.
CREATE OR REPLACE FUNCTION sqlite_real_text(x double precision) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
SELECT CASE
  WHEN x = 'NaN' THEN NULL
  WHEN x = 'Infinity' THEN 'Inf'
  WHEN x = '-Infinity' THEN '-Inf'
  WHEN x = 0 THEN '0.0'
  ELSE (SELECT CASE WHEN e BETWEEN -4 AND 14
                    THEN CASE WHEN strpos(f, '.') > 0 THEN f ELSE f || '.0' END
                    ELSE CASE WHEN strpos(m, '.') > 0 THEN m ELSE m || '.0' END
                         || CASE WHEN e < 0 THEN 'e-' ELSE 'e+' END || CASE WHEN abs(e) < 10 THEN '0' ELSE '' END || abs(e)
               END
        FROM (SELECT trim_scale(n)::text AS f,
                     rtrim(rtrim(split_part(s, 'e', 1), '0'), '.') AS m,
                     split_part(s, 'e', 2)::int AS e
              FROM (SELECT n, btrim(to_char(n, '9.99999999999999EEEE')) AS s
                    FROM (SELECT x::numeric AS n) a) b) c)
END
$$
;;
-- CAST(x AS REAL / INTEGER / NUMERIC / BLOB) with SQLite's lenient reading
-- of text: the longest numeric prefix, 0 when there is none.
CREATE OR REPLACE FUNCTION sqlite_numeric_prefix(t text) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT coalesce((regexp_match(t, '^\s*([+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?)'))[1]::numeric, 0)
$$
;;
CREATE OR REPLACE FUNCTION sqlite_cast_real(text) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT AS 'SELECT sqlite_numeric_prefix($1)::double precision'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_real(double precision) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_real(numeric) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1::double precision'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_real(bigint) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1::double precision'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_real(boolean) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1::int::double precision'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_real(bytea) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT AS 'SELECT sqlite_cast_real(convert_from($1, ''UTF8''))'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_integer(text) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT AS 'SELECT trunc(sqlite_numeric_prefix($1))::bigint'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_integer(double precision) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT AS 'SELECT trunc($1)::bigint'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_integer(numeric) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT AS 'SELECT trunc($1)::bigint'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_integer(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_integer(boolean) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1::int::bigint'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_integer(bytea) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT AS 'SELECT sqlite_cast_integer(convert_from($1, ''UTF8''))'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_numeric(text) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT AS 'SELECT sqlite_numeric_prefix($1)'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_numeric(double precision) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1::numeric'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_numeric(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_numeric(bigint) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1::numeric'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_numeric(boolean) RETURNS numeric LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1::int::numeric'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_blob(text) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS 'SELECT convert_to($1, ''UTF8'')'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_blob(bytea) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_blob(bigint) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS 'SELECT convert_to($1::text, ''UTF8'')'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_blob(double precision) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS 'SELECT convert_to(sqlite_real_text($1), ''UTF8'')'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_blob(integer) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS 'SELECT convert_to($1::text, ''UTF8'')'
;;
CREATE OR REPLACE FUNCTION sqlite_cast_blob(numeric) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS 'SELECT convert_to($1::text, ''UTF8'')'
;;
-- Truth values (truth.rs): non-zero numbers are true, text is read as a number.
CREATE OR REPLACE FUNCTION sqlite_truth(boolean) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1'
;;
CREATE OR REPLACE FUNCTION sqlite_truth(bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 <> 0'
;;
CREATE OR REPLACE FUNCTION sqlite_truth(integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 <> 0'
;;
CREATE OR REPLACE FUNCTION sqlite_truth(double precision) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 <> 0'
;;
CREATE OR REPLACE FUNCTION sqlite_truth(numeric) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 <> 0'
;;
CREATE OR REPLACE FUNCTION sqlite_truth(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT sqlite_cast_real($1) <> 0'
;;
CREATE OR REPLACE FUNCTION sqlite_truth(bytea) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT sqlite_cast_real(convert_from($1, ''UTF8'')) <> 0'
;;
-- A text compared with a column takes the column's type (SQLite's
-- affinity rule): the first argument only chooses the overload.
CREATE OR REPLACE FUNCTION sqlite_coerce(bigint, text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN $2 ~ '^\s*[+-]?[0-9]+\s*$' THEN btrim($2)::bigint
              WHEN $2 ~ '^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$' AND btrim($2)::numeric = trunc(btrim($2)::numeric) THEN btrim($2)::numeric::bigint END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_coerce(double precision, text) RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN $2 ~ '^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$' THEN btrim($2)::double precision END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_coerce(numeric, text) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN $2 ~ '^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$' THEN btrim($2)::numeric END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_coerce(boolean, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN lower(btrim($2)) IN ('0', '1', 't', 'f', 'true', 'false') THEN btrim($2)::boolean END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_coerce(text, text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $2'
;;
CREATE OR REPLACE FUNCTION sqlite_coerce(bytea, text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$SELECT convert_to($2, 'UTF8')$$
;;
-- typeof(x): the storage class the runtime reports for the value's type.
CREATE OR REPLACE FUNCTION sqlite_typeof(bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT CASE WHEN $1 IS NULL THEN 'null' ELSE 'integer' END$$
;;
CREATE OR REPLACE FUNCTION sqlite_typeof(integer) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT CASE WHEN $1 IS NULL THEN 'null' ELSE 'integer' END$$
;;
CREATE OR REPLACE FUNCTION sqlite_typeof(boolean) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT CASE WHEN $1 IS NULL THEN 'null' ELSE 'integer' END$$
;;
CREATE OR REPLACE FUNCTION sqlite_typeof(double precision) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT CASE WHEN $1 IS NULL THEN 'null' ELSE 'real' END$$
;;
CREATE OR REPLACE FUNCTION sqlite_typeof(numeric) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN $1 IS NULL THEN 'null' WHEN $1 = trunc($1) AND abs($1) <= 9223372036854775807 THEN 'integer' ELSE 'real' END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_typeof(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT CASE WHEN $1 IS NULL THEN 'null' ELSE 'text' END$$
;;
CREATE OR REPLACE FUNCTION sqlite_typeof(bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT CASE WHEN $1 IS NULL THEN 'null' ELSE 'blob' END$$
;;
-- x as SQLite converts it to text (`||`, CAST(x AS TEXT), text functions'
-- arguments), per PostgreSQL type: a REAL as SQLite prints it, a boolean
-- (a NUMERIC 0/1 in SQLite) as '0'/'1'. Used where the type is not known
-- from the expression's form.
CREATE OR REPLACE FUNCTION sqlite_text(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1'
;;
CREATE OR REPLACE FUNCTION sqlite_text(bigint) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'
;;
CREATE OR REPLACE FUNCTION sqlite_text(integer) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'
;;
CREATE OR REPLACE FUNCTION sqlite_text(smallint) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'
;;
CREATE OR REPLACE FUNCTION sqlite_text(numeric) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'
;;
CREATE OR REPLACE FUNCTION sqlite_text(double precision) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT sqlite_real_text($1)'
;;
CREATE OR REPLACE FUNCTION sqlite_text(boolean) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::int::text'
;;
CREATE OR REPLACE FUNCTION sqlite_text(bytea) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'
;;
-- Any other type (float4, json, date …): PostgreSQL's text.
CREATE OR REPLACE FUNCTION sqlite_text(anyelement) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text'
;;
-- length(x): characters of text, bytes of a blob, characters of a number's text.
CREATE OR REPLACE FUNCTION sqlite_length(text) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS 'SELECT char_length($1)'
;;
CREATE OR REPLACE FUNCTION sqlite_length(bytea) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS 'SELECT octet_length($1)'
;;
CREATE OR REPLACE FUNCTION sqlite_length(bigint) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS 'SELECT char_length($1::text)'
;;
-- (An integer argument takes the integer overloads, not PostgreSQL's
-- preferred double precision, which now prints as a REAL: '5.0'.)
CREATE OR REPLACE FUNCTION sqlite_length(integer) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS 'SELECT char_length($1::text)'
;;
CREATE OR REPLACE FUNCTION sqlite_length(double precision) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS 'SELECT char_length(sqlite_real_text($1))'
;;
CREATE OR REPLACE FUNCTION sqlite_length(numeric) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS 'SELECT char_length($1::text)'
;;
CREATE OR REPLACE FUNCTION sqlite_hex(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT coalesce(upper(encode(convert_to($1, 'UTF8'), 'hex')), '')$$
;;
CREATE OR REPLACE FUNCTION sqlite_hex(bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT coalesce(upper(encode($1, 'hex')), '')$$
;;
CREATE OR REPLACE FUNCTION sqlite_hex(bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT coalesce(upper(encode(convert_to($1::text, 'UTF8'), 'hex')), '')$$
;;
CREATE OR REPLACE FUNCTION sqlite_quote(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT coalesce(quote_literal($1), 'NULL')$$
;;
CREATE OR REPLACE FUNCTION sqlite_quote(bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT coalesce($1::text, 'NULL')$$
;;
CREATE OR REPLACE FUNCTION sqlite_quote(integer) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT coalesce($1::text, 'NULL')$$
;;
-- A NUMERIC column's value (datetime) is SQLite's INTEGER or REAL as its
-- text shows (numeric would otherwise take the double precision overload).
CREATE OR REPLACE FUNCTION sqlite_quote(numeric) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT coalesce($1::text, 'NULL')$$
;;
-- quote() of a REAL: SQLite's text when it reads back as the same value
-- (SQLite gives 20 digits otherwise; the shortest exact text here).
CREATE OR REPLACE FUNCTION sqlite_quote(double precision) RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT coalesce(CASE WHEN sqlite_real_text($1) IN ('Inf', '-Inf') OR sqlite_real_text($1)::double precision <> $1 THEN $1::text
                     ELSE sqlite_real_text($1) END, 'NULL')
$$
;;
CREATE OR REPLACE FUNCTION sqlite_quote(bytea) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT coalesce('X''' || upper(encode($1, 'hex')) || '''', 'NULL')$$
;;
-- substr(x, start [, length]) with SQLite's rules for 0 and negative values.
CREATE OR REPLACE FUNCTION sqlite_substr(x text, p1 bigint, p2 bigint) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  len bigint := char_length(x);
  negative boolean := p2 < 0;
  n bigint := abs(p2);
BEGIN
  IF p1 < 0 THEN
    p1 := p1 + len;
    IF p1 < 0 THEN
      n := n + p1;
      IF n < 0 THEN n := 0; END IF;
      p1 := 0;
    END IF;
  ELSIF p1 > 0 THEN
    p1 := p1 - 1;
  ELSIF n > 0 THEN
    n := n - 1;
  END IF;
  IF negative THEN
    p1 := p1 - n;
    IF p1 < 0 THEN n := n + p1; p1 := 0; END IF;
  END IF;
  IF n <= 0 OR p1 >= len THEN RETURN ''; END IF;
  RETURN substr(x, (p1 + 1)::int, least(n, 2147483647)::int);
END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_substr(x text, p1 bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT sqlite_substr($1, $2, 2147483647)'
;;
-- x GLOB pattern: * ? [...] [^...], case-sensitive.
CREATE OR REPLACE FUNCTION sqlite_glob_regex(pattern text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  re text := '^';
  i int := 1;
  n int := char_length(pattern);
  c text;
  j int;
  body text;
  negate boolean;
BEGIN
  WHILE i <= n LOOP
    c := substr(pattern, i, 1);
    IF c = '*' THEN re := re || '.*';
    ELSIF c = '?' THEN re := re || '.';
    ELSIF c = '[' THEN
      j := i + 1;
      negate := substr(pattern, j, 1) = '^';
      IF negate THEN j := j + 1; END IF;
      body := '';
      IF substr(pattern, j, 1) = ']' THEN body := '\]'; j := j + 1; END IF;
      WHILE j <= n AND substr(pattern, j, 1) <> ']' LOOP
        c := substr(pattern, j, 1);
        body := body || CASE WHEN c IN ('\', '[', '^') THEN '\' || c ELSE c END;
        j := j + 1;
      END LOOP;
      IF j > n THEN RETURN '^(?!)'; END IF;
      re := re || '[' || CASE WHEN negate THEN '^' ELSE '' END || body || ']';
      i := j;
    ELSIF c ~ '[.^$+(){}|\\\[\]]' THEN re := re || '\' || c;
    ELSE re := re || c;
    END IF;
    i := i + 1;
  END LOOP;
  RETURN re || '$';
END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_glob(pattern text, value text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$SELECT (value COLLATE "C") ~ sqlite_glob_regex(pattern)$$
;;
-- round(x, n): half away from zero, always REAL.
CREATE OR REPLACE FUNCTION sqlite_round(x double precision, n bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT round($1::numeric, greatest(least($2, 30), 0)::int)::double precision'
;;
CREATE OR REPLACE FUNCTION sqlite_round(x numeric, n bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT round($1, greatest(least($2, 30), 0)::int)::double precision'
;;
CREATE OR REPLACE FUNCTION sqlite_round(x text, n bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT round(sqlite_numeric_prefix($1), greatest(least($2, 30), 0)::int)::double precision'
;;
-- random(): a signed 64-bit integer.
CREATE OR REPLACE FUNCTION sqlite_random() RETURNS bigint LANGUAGE sql VOLATILE AS $$
  SELECT ((floor(random() * 4294967296)::numeric - 2147483648) * 4294967296 + floor(random() * 4294967296)::numeric)::bigint
$$
;;
CREATE OR REPLACE FUNCTION sqlite_zeroblob(n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$SELECT decode(repeat('00', greatest(n, 0)::int), 'hex')$$
;;
CREATE OR REPLACE FUNCTION sqlite_randomblob(n bigint) RETURNS bytea LANGUAGE sql VOLATILE STRICT AS $$
  SELECT coalesce(decode(string_agg(lpad(to_hex(floor(random() * 256)::int), 2, '0'), ''), 'hex'), '\x00'::bytea)
  FROM generate_series(1, greatest(n, 1))
$$
;;
-- One row's value of a bare column in a grouped query (scope.rs).
CREATE OR REPLACE FUNCTION sqlite_first(anyarray) RETURNS anyelement LANGUAGE sql IMMUTABLE AS 'SELECT $1[1]'
;;
-- Date and time: a value and modifiers to a UTC timestamp (NULL when invalid).
CREATE OR REPLACE FUNCTION sqlite_time_value(args text[]) RETURNS timestamp
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v text := btrim(args[1]);
  ts timestamp;
  num numeric;
  m text[];
  first_modifier int := 2;
  i int;
  modifier text;
  amount numeric;
  unit text;
  total_months int;
  d int;
BEGIN
  IF v IS NULL THEN RETURN NULL; END IF;
  IF v ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$' THEN
    num := v::numeric;
    modifier := lower(btrim(args[2]));
    IF modifier = 'unixepoch' OR (modifier = 'auto' AND NOT (num BETWEEN 0 AND 5373484.49999)) THEN
      ts := to_timestamp(num::double precision) AT TIME ZONE 'UTC';
      first_modifier := 3;
    ELSE
      IF modifier IN ('julianday', 'auto') THEN first_modifier := 3; END IF;
      IF num < 0 OR num > 5373484.49999 THEN RETURN NULL; END IF;
      ts := timestamp '2000-01-01 12:00:00' + ((num - 2451545) * 86400000)::bigint * interval '1 millisecond';
    END IF;
  ELSIF lower(v) = 'now' THEN
    ts := date_trunc('milliseconds', statement_timestamp() AT TIME ZONE 'UTC');
  ELSE
    m := regexp_match(v, '^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[ T]+([0-9]{2}):([0-9]{2})(?::([0-9]{2}(?:\.[0-9]*)?))?)?\s*(Z|[+-][0-9]{2}:?[0-9]{2})?$', 'i');
    IF m IS NOT NULL THEN
      IF m[2]::int NOT BETWEEN 1 AND 12 OR m[3]::int NOT BETWEEN 1 AND 31 THEN RETURN NULL; END IF;
      ts := make_date(m[1]::int, m[2]::int, 1) + (m[3]::int - 1) * interval '1 day'
            + coalesce(m[4]::int, 0) * interval '1 hour' + coalesce(m[5]::int, 0) * interval '1 minute'
            + coalesce(m[6]::numeric, 0) * interval '1 second';
    ELSE
      m := regexp_match(v, '^()()()([0-9]{2}):([0-9]{2})(?::([0-9]{2}(?:\.[0-9]*)?))?\s*(Z|[+-][0-9]{2}:?[0-9]{2})?$', 'i');
      IF m IS NULL THEN RETURN NULL; END IF;
      ts := timestamp '2000-01-01' + m[4]::int * interval '1 hour' + m[5]::int * interval '1 minute'
            + coalesce(m[6]::numeric, 0) * interval '1 second';
    END IF;
    IF m[4] IS NOT NULL AND (m[4]::int > 24 OR m[5]::int > 59 OR coalesce(m[6]::numeric, 0) >= 60) THEN RETURN NULL; END IF;
    IF m[7] IS NOT NULL AND upper(m[7]) <> 'Z' THEN
      ts := ts - (CASE WHEN left(m[7], 1) = '-' THEN -1 ELSE 1 END)
                 * (substr(m[7], 2, 2)::int * interval '1 hour' + right(m[7], 2)::int * interval '1 minute');
    END IF;
  END IF;
  FOR i IN first_modifier .. coalesce(array_length(args, 1), 1) LOOP
    modifier := lower(btrim(args[i]));
    IF modifier IS NULL THEN RETURN NULL; END IF;
    m := regexp_match(modifier, '^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*(day|hour|minute|second|month|year)s?$');
    IF m IS NOT NULL THEN
      amount := m[1]::numeric;
      unit := m[2];
      IF unit IN ('month', 'year') THEN
        total_months := extract(year FROM ts)::int * 12 + extract(month FROM ts)::int - 1
                        + (CASE WHEN unit = 'year' THEN 12 ELSE 1 END) * trunc(amount)::int;
        d := extract(day FROM ts)::int;
        ts := make_date(total_months / 12, total_months % 12 + 1, 1) + (d - 1) * interval '1 day' + (ts - date_trunc('day', ts));
        amount := amount - trunc(amount);
        IF amount <> 0 THEN
          ts := ts + amount * (CASE WHEN unit = 'year' THEN 365 ELSE 30 END) * interval '1 day';
        END IF;
      ELSE
        ts := ts + amount * ('1 ' || unit)::interval;
      END IF;
    ELSIF modifier ~ '^[+-][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]*)?)?$' THEN
      ts := ts + (CASE WHEN left(modifier, 1) = '-' THEN -1 ELSE 1 END) * substr(modifier, 2)::interval;
    ELSIF modifier = 'start of day' THEN ts := date_trunc('day', ts);
    ELSIF modifier = 'start of month' THEN ts := date_trunc('month', ts);
    ELSIF modifier = 'start of year' THEN ts := date_trunc('year', ts);
    ELSIF modifier ~ '^weekday [0-6]$' THEN
      ts := ts + ((right(modifier, 1)::int - extract(dow FROM ts)::int + 7) % 7) * interval '1 day';
    ELSIF modifier = 'localtime' THEN
      ts := (ts AT TIME ZONE 'UTC') AT TIME ZONE current_setting('TimeZone');
    ELSIF modifier = 'utc' THEN
      ts := (ts AT TIME ZONE current_setting('TimeZone')) AT TIME ZONE 'UTC';
    ELSIF modifier IN ('subsec', 'subsecond') THEN
      NULL;
    ELSE
      RETURN NULL;
    END IF;
  END LOOP;
  RETURN ts;
END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_subsec(args text[]) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT EXISTS (SELECT 1 FROM unnest(args[2:]) a WHERE lower(btrim(a)) IN ('subsec', 'subsecond'))
$$
;;
CREATE OR REPLACE FUNCTION sqlite_datetime(VARIADIC args text[]) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT to_char(sqlite_time_value(args), CASE WHEN sqlite_subsec(args) THEN 'YYYY-MM-DD HH24:MI:SS.MS' ELSE 'YYYY-MM-DD HH24:MI:SS' END)
$$
;;
CREATE OR REPLACE FUNCTION sqlite_date(VARIADIC args text[]) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT to_char(sqlite_time_value(args), 'YYYY-MM-DD')
$$
;;
CREATE OR REPLACE FUNCTION sqlite_time(VARIADIC args text[]) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT to_char(sqlite_time_value(args), CASE WHEN sqlite_subsec(args) THEN 'HH24:MI:SS.MS' ELSE 'HH24:MI:SS' END)
$$
;;
CREATE OR REPLACE FUNCTION sqlite_julianday(VARIADIC args text[]) RETURNS double precision LANGUAGE sql STABLE AS $$
  SELECT extract(epoch FROM sqlite_time_value(args))::double precision / 86400 + 2440587.5
$$
;;
CREATE OR REPLACE FUNCTION sqlite_unixepoch(VARIADIC args text[]) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT floor(extract(epoch FROM sqlite_time_value(args)))::bigint
$$
;;
CREATE OR REPLACE FUNCTION sqlite_strftime(VARIADIC args text[]) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  fmt text := args[1];
  ts timestamp := sqlite_time_value(args[2:]);
  out text := '';
  i int := 1;
  c text;
BEGIN
  IF fmt IS NULL OR ts IS NULL THEN RETURN NULL; END IF;
  WHILE i <= char_length(fmt) LOOP
    c := substr(fmt, i, 1);
    IF c <> '%' THEN
      out := out || c;
    ELSE
      i := i + 1;
      c := substr(fmt, i, 1);
      out := out || CASE c
        WHEN 'd' THEN to_char(ts, 'DD')
        WHEN 'f' THEN to_char(ts, 'SS.MS')
        WHEN 'H' THEN to_char(ts, 'HH24')
        WHEN 'j' THEN to_char(ts, 'DDD')
        WHEN 'J' THEN (extract(epoch FROM ts)::double precision / 86400 + 2440587.5)::text
        WHEN 'm' THEN to_char(ts, 'MM')
        WHEN 'M' THEN to_char(ts, 'MI')
        WHEN 's' THEN floor(extract(epoch FROM ts))::bigint::text
        WHEN 'S' THEN to_char(ts, 'SS')
        WHEN 'w' THEN extract(dow FROM ts)::int::text
        WHEN 'W' THEN lpad(((extract(doy FROM ts)::int - 1 + 7 - (extract(isodow FROM ts)::int - 1)) / 7)::text, 2, '0')
        WHEN 'Y' THEN to_char(ts, 'YYYY')
        WHEN '%' THEN '%'
        ELSE NULL END;
      IF out IS NULL THEN RETURN NULL; END IF;
    END IF;
    i := i + 1;
  END LOOP;
  RETURN out;
END
$$
;;
-- JSON: SQLite's paths ($, $.a.b, $[0], $."k") as PostgreSQL path arrays.
CREATE OR REPLACE FUNCTION sqlite_json_path(path text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  rest text;
  parts text[] := '{}';
  m text[];
BEGIN
  IF left(path, 1) <> '$' THEN RAISE EXCEPTION 'JSON path error near ''%''', path; END IF;
  rest := substr(path, 2);
  WHILE rest <> '' LOOP
    m := regexp_match(rest, '^\.(?:"([^"]*)"|([^.\[]+))');
    IF m IS NOT NULL THEN
      parts := parts || coalesce(m[1], m[2]);
      rest := substr(rest, char_length((regexp_match(rest, '^\.(?:"[^"]*"|[^.\[]+)'))[1]) + 1);
      CONTINUE;
    END IF;
    m := regexp_match(rest, '^\[([0-9]+)\]');
    IF m IS NULL THEN RAISE EXCEPTION 'JSON path error near ''%''', rest; END IF;
    parts := parts || m[1];
    rest := substr(rest, char_length(m[1]) + 3);
  END LOOP;
  RETURN parts;
END
$$
;;
-- A JSON value as SQLite returns it from json_extract / ->>: strings
-- unquoted, JSON null as NULL, numbers and containers as their JSON text.
CREATE OR REPLACE FUNCTION sqlite_json_sql_value(j json) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE json_typeof(j) WHEN 'string' THEN j #>> '{}' WHEN 'null' THEN NULL ELSE j::text END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_json_extract(VARIADIC args text[]) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  doc json;
  items text[] := '{}';
  i int;
BEGIN
  IF args[1] IS NULL THEN RETURN NULL; END IF;
  doc := args[1]::json;
  IF array_length(args, 1) = 2 THEN
    RETURN sqlite_json_sql_value(doc #> sqlite_json_path(args[2]));
  END IF;
  FOR i IN 2 .. array_length(args, 1) LOOP
    items := items || coalesce((doc #> sqlite_json_path(args[i]))::text, 'null');
  END LOOP;
  RETURN '[' || array_to_string(items, ',') || ']';
END
$$
;;
-- The key of -> / ->>: a path, an array index, or an object key.
CREATE OR REPLACE FUNCTION sqlite_json_key_path(key text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT CASE WHEN left(key, 1) = '$' THEN sqlite_json_path(key) ELSE ARRAY[key] END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_json_extract_value(doc text, key text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT sqlite_json_sql_value(doc::json #> sqlite_json_key_path(key))
$$
;;
CREATE OR REPLACE FUNCTION sqlite_json_arrow(doc text, key text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT (doc::json #> sqlite_json_key_path(key))::text
$$
;;
CREATE OR REPLACE FUNCTION sqlite_json_valid(VARIADIC args text[]) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF args[1] IS NULL THEN RETURN 0; END IF;
  PERFORM args[1]::json;
  RETURN 1;
EXCEPTION WHEN others THEN
  RETURN 0;
END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_json_type(VARIADIC args text[]) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  j json;
BEGIN
  IF args[1] IS NULL THEN RETURN NULL; END IF;
  j := args[1]::json;
  IF array_length(args, 1) > 1 THEN j := j #> sqlite_json_path(args[2]); END IF;
  IF j IS NULL THEN RETURN NULL; END IF;
  RETURN CASE json_typeof(j)
    WHEN 'number' THEN CASE WHEN j::text ~ '^-?[0-9]+$' THEN 'integer' ELSE 'real' END
    WHEN 'boolean' THEN j::text
    WHEN 'string' THEN 'text'
    ELSE json_typeof(j) END;
END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_json_array_length(VARIADIC args text[]) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  j json;
BEGIN
  IF args[1] IS NULL THEN RETURN NULL; END IF;
  j := args[1]::json;
  IF array_length(args, 1) > 1 THEN j := j #> sqlite_json_path(args[2]); END IF;
  IF j IS NULL THEN RETURN NULL; END IF;
  RETURN CASE WHEN json_typeof(j) = 'array' THEN json_array_length(j) ELSE 0 END;
END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_json(VARIADIC args text[]) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT args[1]::json::text'
;;
CREATE OR REPLACE FUNCTION sqlite_json_quote(VARIADIC args text[]) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT to_json(args[1])::text'
;;
-- json_each(x) in FROM: one row per element or member.
CREATE OR REPLACE FUNCTION sqlite_json_each(doc text)
RETURNS TABLE (key text, value text, type text, atom text, id bigint, parent bigint, fullkey text, path text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  j json;
BEGIN
  IF doc IS NULL THEN RETURN; END IF;
  j := doc::json;
  IF json_typeof(j) = 'array' THEN
    RETURN QUERY
      SELECT (e.o - 1)::text, sqlite_json_sql_value(e.v), sqlite_json_type(e.v::text),
             CASE WHEN json_typeof(e.v) IN ('object', 'array') THEN NULL ELSE sqlite_json_sql_value(e.v) END,
             e.o, NULL::bigint, '$[' || (e.o - 1) || ']', '$'
      FROM json_array_elements(j) WITH ORDINALITY AS e(v, o);
  ELSIF json_typeof(j) = 'object' THEN
    RETURN QUERY
      SELECT e.k, sqlite_json_sql_value(e.v), sqlite_json_type(e.v::text),
             CASE WHEN json_typeof(e.v) IN ('object', 'array') THEN NULL ELSE sqlite_json_sql_value(e.v) END,
             e.o, NULL::bigint, '$.' || e.k, '$'
      FROM json_each(j) WITH ORDINALITY AS e(k, v, o);
  ELSE
    RETURN QUERY SELECT NULL::text, sqlite_json_sql_value(j), sqlite_json_type(doc), sqlite_json_sql_value(j), 0::bigint, NULL::bigint, '$'::text, '$'::text;
  END IF;
END
$$
;;
-- FTS4's standard query syntax as a tsquery (fts.rs). cols: the table's
-- FTS columns in weight order (A, B, C, D); only_column: the column a MATCH is
-- limited to, or NULL.
CREATE OR REPLACE FUNCTION sqlite_fts_query(q text, cols text, only_column text) RETURNS tsquery
LANGUAGE plpgsql STABLE AS $$
DECLARE
  names text[] := string_to_array(cols, ',');
  conjuncts tsquery[] := '{}';
  m text[];
  term text;
  weight text;
  lexemes text[];
  prefix boolean;
  phrase text;
  one tsquery;
  pending_or boolean := false;
  negate boolean;
  k int;
  result tsquery;
BEGIN
  IF q IS NULL THEN RETURN NULL; END IF;
  FOR m IN SELECT regexp_matches(q, '(-?)(?:([A-Za-z_][A-Za-z0-9_]*):)?("[^"]*"\*?|[^\s"]+)', 'g') LOOP
    negate := m[1] = '-';
    term := m[3];
    IF m[2] IS NULL AND NOT negate AND term = 'OR' THEN pending_or := true; CONTINUE; END IF;
    IF m[2] IS NULL AND NOT negate AND term = 'AND' THEN CONTINUE; END IF;
    prefix := right(term, 1) = '*';
    IF prefix THEN term := left(term, -1); END IF;
    term := btrim(term, '"');
    weight := '';
    IF coalesce(m[2], only_column) IS NOT NULL THEN
      k := array_position(names, lower(coalesce(m[2], only_column)));
      IF k IS NULL OR k > 4 THEN RAISE EXCEPTION 'no such column: %', coalesce(m[2], only_column); END IF;
      weight := substr('ABCD', k, 1);
    END IF;
    SELECT array_agg(l ORDER BY ord) INTO lexemes
      FROM (SELECT unnest(d.lexemes) AS l, row_number() OVER () AS ord FROM ts_debug('simple', term) d
            WHERE d.lexemes IS NOT NULL AND array_length(d.lexemes, 1) > 0) x;
    IF lexemes IS NULL THEN CONTINUE; END IF;
    phrase := '';
    FOR k IN 1 .. array_length(lexemes, 1) LOOP
      IF k > 1 THEN phrase := phrase || ' <-> '; END IF;
      phrase := phrase || quote_literal(lexemes[k]) || ':'
                || CASE WHEN prefix AND k = array_length(lexemes, 1) THEN '*' ELSE '' END || weight;
      IF right(phrase, 1) = ':' THEN phrase := left(phrase, -1); END IF;
    END LOOP;
    one := phrase::tsquery;
    IF negate THEN
      one := !! one;
    END IF;
    IF pending_or AND array_length(conjuncts, 1) > 0 THEN
      conjuncts[array_length(conjuncts, 1)] := conjuncts[array_length(conjuncts, 1)] || one;
    ELSE
      conjuncts := conjuncts || one;
    END IF;
    pending_or := false;
  END LOOP;
  FOREACH one IN ARRAY conjuncts LOOP
    result := CASE WHEN result IS NULL THEN one ELSE result && one END;
  END LOOP;
  RETURN result;
END
$$
;;
-- printf(format, …): %s %d %i %f %.Nf %x %X %c %%.
CREATE OR REPLACE FUNCTION sqlite_printf(VARIADIC args text[]) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  fmt text := args[1];
  out text := '';
  i int := 1;
  next_arg int := 2;
  m text[];
  spec text;
  arg text;
BEGIN
  IF fmt IS NULL THEN RETURN NULL; END IF;
  WHILE i <= char_length(fmt) LOOP
    IF substr(fmt, i, 1) <> '%' THEN
      out := out || substr(fmt, i, 1);
      i := i + 1;
      CONTINUE;
    END IF;
    m := regexp_match(substr(fmt, i), '^%([-0 +]*)([0-9]*)(?:\.([0-9]+))?([sdifxXc%])');
    IF m IS NULL THEN RAISE EXCEPTION 'printf format % is not supported', substr(fmt, i); END IF;
    spec := m[4];
    IF spec = '%' THEN
      out := out || '%';
    ELSE
      arg := args[next_arg];
      next_arg := next_arg + 1;
      arg := CASE spec
        WHEN 's' THEN coalesce(arg, '')
        WHEN 'd' THEN sqlite_cast_integer(coalesce(arg, '0'))::text
        WHEN 'i' THEN sqlite_cast_integer(coalesce(arg, '0'))::text
        WHEN 'f' THEN to_char(sqlite_cast_real(coalesce(arg, '0')), 'FM9999999999999999990.' || repeat('0', coalesce(m[3], '6')::int))
        WHEN 'x' THEN lower(to_hex(sqlite_cast_integer(coalesce(arg, '0'))))
        WHEN 'X' THEN upper(to_hex(sqlite_cast_integer(coalesce(arg, '0'))))
        WHEN 'c' THEN left(coalesce(arg, ''), 1)
      END;
      IF spec = 'f' AND coalesce(m[3], '6') = '0' THEN arg := rtrim(arg, '.'); END IF;
      -- A width is a minimum (lpad/rpad would cut a longer text).
      IF m[2] <> '' AND char_length(arg) < m[2]::int THEN
        arg := CASE WHEN position('-' IN m[1]) > 0 THEN rpad(arg, m[2]::int)
                    WHEN position('0' IN m[1]) > 0 AND spec IN ('d', 'i', 'f', 'x', 'X') THEN lpad(arg, m[2]::int, '0')
                    ELSE lpad(arg, m[2]::int) END;
      END IF;
      out := out || arg;
    END IF;
    i := i + char_length(m[1]) + char_length(m[2]) + coalesce(char_length(m[3]) + 1, 0) + 2;
  END LOOP;
  RETURN out;
END
$$
;;
-- Rowids (see ddl.rs, "The rowid"). Each table with an INTEGER PRIMARY KEY
-- has a sequence, named like its trigger function (`hidden`), owned by the
-- rowid column and its default: `nextval` never waits for another
-- transaction and costs the same at any table size. A BEFORE trigger,
-- fired only when its WHEN clause sees a NULL rowid or one above the
-- sequence's last value, gives the NULL a rowid and moves the sequence up
-- past an explicit one (under an advisory lock held for that check only,
-- so two such moves cannot undo each other; never to commit). AUTOINCREMENT
-- tables' sequences are commented 'AUTOINCREMENT' and shown by the
-- sqlite_sequence view; they may hand out 2^63-1 and then fail (SQLITE_FULL),
-- a plain table's sequence stops below it so an explicit 2^63-1 never stops
-- later inserts.
CREATE OR REPLACE FUNCTION sqlite_rowid_install(tbl text, col text, autoinc boolean, hidden text) RETURNS void
LANGUAGE plpgsql AS $i$
DECLARE
  top bigint := CASE WHEN autoinc THEN 9223372036854775807 ELSE 9223372036854775806 END;
  seq text;
BEGIN
  EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I AS bigint MINVALUE -9223372036854775808 MAXVALUE %s START 1',
                 hidden, top);
  seq := quote_ident(hidden);
  EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.%I', seq, tbl, col);
  EXECUTE format('COMMENT ON SEQUENCE %s IS %L', seq, CASE WHEN autoinc THEN 'AUTOINCREMENT' END);
  EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET DEFAULT nextval(%L::regclass)', tbl, col, seq);
  EXECUTE format($f$CREATE OR REPLACE FUNCTION %1$I() RETURNS trigger LANGUAGE plpgsql AS $b$
    DECLARE
      last bigint;
      called boolean;
    BEGIN
      IF NEW.%2$I IS NULL THEN
        NEW.%2$I := nextval(%3$L::regclass);
      ELSIF NEW.%2$I <= %4$s THEN
        PERFORM pg_advisory_lock(TG_RELID::bigint);
        SELECT last_value, is_called INTO last, called FROM %3$s;
        IF NOT called OR NEW.%2$I > last THEN
          PERFORM setval(%3$L::regclass, greatest(NEW.%2$I, %5$s));
        END IF;
        PERFORM pg_advisory_unlock(TG_RELID::bigint);
      END IF;
      RETURN NEW;
    END $b$$f$, hidden, col, seq, top, CASE WHEN autoinc THEN '0' ELSE '-9223372036854775808' END);
  EXECUTE format('CREATE OR REPLACE TRIGGER sqlite__rowid BEFORE INSERT OR UPDATE OF %1$I ON %2$I FOR EACH ROW '
                 'WHEN (NEW.%1$I IS NULL OR NEW.%1$I > coalesce(pg_sequence_last_value(%3$L::regclass), -9223372036854775808)) '
                 'EXECUTE FUNCTION %4$I()', col, tbl, seq, hidden);
END
$i$
;;
-- The rowid machinery again after the table (its sequence and function
-- renamed from `old_hidden`) or its rowid column was renamed: the function
-- names both.
CREATE OR REPLACE FUNCTION sqlite_rowid_refresh(tbl text, old_hidden text, hidden text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  col text;
  autoinc boolean;
BEGIN
  IF to_regclass(quote_ident(old_hidden)) IS NULL THEN
    RETURN;
  END IF;
  IF old_hidden <> hidden THEN
    EXECUTE format('ALTER SEQUENCE %I RENAME TO %I', old_hidden, hidden);
    EXECUTE format('ALTER FUNCTION %I() RENAME TO %I', old_hidden, hidden);
  END IF;
  SELECT a.attname, coalesce(obj_description(s.oid, 'pg_class') = 'AUTOINCREMENT', false) INTO col, autoinc
  FROM pg_class s
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  WHERE s.oid = to_regclass(quote_ident(hidden));
  PERFORM sqlite_rowid_install(tbl, col, autoinc, hidden);
END
$$
;;
-- sqlite_sequence: one row per AUTOINCREMENT table that was ever given a
-- rowid (SQLite adds the row at the first insert), its sequence's value.
CREATE OR REPLACE FUNCTION sqlite_sequence_rows()
RETURNS TABLE (name text, seq bigint, tbl regclass, col text, seq_oid regclass)
LANGUAGE sql STABLE AS $$
  SELECT coalesce(sqlite_object_name(obj_description(t.oid, 'pg_class')), t.relname::text),
         pg_sequence_last_value(s.oid), t.oid::regclass, a.attname::text, s.oid::regclass
  FROM pg_class s
  JOIN pg_namespace n ON n.oid = s.relnamespace AND n.nspname = current_schema()
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
  JOIN pg_class t ON t.oid = d.refobjid
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
  WHERE s.relkind = 'S' AND obj_description(s.oid, 'pg_class') = 'AUTOINCREMENT'
  ORDER BY s.oid
$$
;;
-- Writes to sqlite_sequence move the table's sequence, never below the
-- table's largest rowid (below it, SQLite would hand out that rowid plus
-- one anyway): UPDATE and INSERT set it, DELETE sets it to the largest
-- rowid (or back to its start on an empty table). A row naming no
-- AUTOINCREMENT table is accepted and kept nowhere.
CREATE OR REPLACE FUNCTION sqlite_sequence_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  top bigint;
BEGIN
  SELECT * INTO r FROM sqlite_sequence_rows() s
  WHERE lower(s.name) = lower(CASE WHEN TG_OP = 'DELETE' THEN OLD.name ELSE NEW.name END);
  IF r.seq_oid IS NOT NULL THEN
    EXECUTE format('SELECT max(%I) FROM %s', r.col, r.tbl) INTO top;
    PERFORM pg_advisory_lock(r.tbl::oid::bigint);
    IF TG_OP = 'DELETE' AND top IS NULL THEN
      PERFORM setval(r.seq_oid, 1, false);
    ELSIF TG_OP = 'DELETE' THEN
      PERFORM setval(r.seq_oid, top);
    ELSE
      PERFORM setval(r.seq_oid, coalesce(greatest(NEW.seq, top), 0));
    END IF;
    PERFORM pg_advisory_unlock(r.tbl::oid::bigint);
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$
;;
-- Created with the schema's first AUTOINCREMENT table, as SQLite does.
CREATE OR REPLACE FUNCTION sqlite_sequence_create() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF to_regclass(format('%I.sqlite_sequence', current_schema())) IS NOT NULL THEN
    RETURN;
  END IF;
  CREATE VIEW sqlite_sequence AS
    SELECT s.name, s.seq FROM sqlite_sequence_rows() s WHERE s.seq IS NOT NULL;
  COMMENT ON VIEW sqlite_sequence IS 'CREATE TABLE sqlite_sequence(name,seq)';
  CREATE TRIGGER sqlite__write INSTEAD OF INSERT OR UPDATE OR DELETE ON sqlite_sequence
    FOR EACH ROW EXECUTE FUNCTION sqlite_sequence_write();
END
$$
;;
-- Schemas made before rowids had sequences: each table's trigger took a
-- table lock and read max(rowid), and AUTOINCREMENT tables' values were
-- rows of a table sqlite_sequence. Give each such table its sequence,
-- started past its largest rowid and its sqlite_sequence value, then
-- replace that table by the view.
DO $$
DECLARE
  t record;
  old_sequence boolean := EXISTS (
    SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
    WHERE c.relname = 'sqlite_sequence' AND c.relkind = 'r');
BEGIN
  FOR t IN
    SELECT c.relname::text AS tbl, a.attname::text AS col, p.proname::text AS hidden,
           p.prosrc LIKE '%sqlite_sequence%' AS autoinc
    FROM pg_trigger tg
    JOIN pg_class c ON c.oid = tg.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
    JOIN pg_proc p ON p.oid = tg.tgfoid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = tg.tgattr[0]
    WHERE tg.tgname = 'sqlite__rowid' AND p.prosrc LIKE '%pg_advisory_xact_lock%'
  LOOP
    PERFORM sqlite_rowid_install(t.tbl, t.col, t.autoinc, t.hidden);
    EXECUTE format('SELECT setval(%L::regclass, max(%I)) FROM %I HAVING max(%I) IS NOT NULL',
                   quote_ident(t.hidden), t.col, t.tbl, t.col);
    IF t.autoinc AND old_sequence THEN
      EXECUTE format('SELECT setval(%1$L::regclass, greatest(s.seq, pg_sequence_last_value(%1$L::regclass))) '
                     'FROM sqlite_sequence s WHERE s.name = %2$L AND s.seq IS NOT NULL',
                     quote_ident(t.hidden), t.tbl);
    END IF;
  END LOOP;
  IF old_sequence THEN
    DROP TABLE sqlite_sequence;
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
               WHERE c.relkind = 'S' AND obj_description(c.oid, 'pg_class') = 'AUTOINCREMENT') THEN
      PERFORM sqlite_sequence_create();
    END IF;
  END IF;
END
$$
