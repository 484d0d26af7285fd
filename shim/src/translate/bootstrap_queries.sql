-- plex-pg: helper functions for the translation of query expressions
-- (expr.rs, functions.rs), created in each routed schema after
-- bootstrap.sql. Statements are separated by lines holding only ";;".
-- Kept apart from bootstrap.sql so expression work and schema work do not
-- edit one file. Every function is LANGUAGE sql and IMMUTABLE so
-- PostgreSQL inlines it.

-- a / b (expr.rs): SQLite divides integers as integers (truncating toward
-- zero) and anything with a REAL as reals; division by zero is NULL. A
-- numeric holding an integral value is SQLite's INTEGER (sum() of
-- integers, NUMERIC-affinity columns), so it divides as one. One overload
-- per type: PostgreSQL picks the one with the most exact matches, then
-- double precision (its preferred numeric type).
CREATE OR REPLACE FUNCTION sqlite_div(a integer, b integer) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT a / nullif(b, 0)'
;;
CREATE OR REPLACE FUNCTION sqlite_div(a bigint, b bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT a / nullif(b, 0)'
;;
CREATE OR REPLACE FUNCTION sqlite_div(a numeric, b numeric) RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT CASE WHEN b = 0 THEN NULL WHEN a = trunc(a) AND b = trunc(b) THEN div(a, b) ELSE a / b END'
;;
CREATE OR REPLACE FUNCTION sqlite_div(a double precision, b double precision) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT a / nullif(b, 0)'
;;
-- a % b: SQLite converts both to integers; the result is REAL when either
-- was; remainder by zero is NULL.
CREATE OR REPLACE FUNCTION sqlite_mod(a integer, b integer) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT a % nullif(b, 0)'
;;
CREATE OR REPLACE FUNCTION sqlite_mod(a bigint, b bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT a % nullif(b, 0)'
;;
CREATE OR REPLACE FUNCTION sqlite_mod(a numeric, b numeric) RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT mod(trunc(a), nullif(trunc(b), 0))'
;;
CREATE OR REPLACE FUNCTION sqlite_mod(a double precision, b double precision) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT (mod(trunc(a::numeric), nullif(trunc(b::numeric), 0)))::double precision'
;;
-- a << b, a >> b on 64-bit integers: a negative count shifts the other
-- way, a count of 64 or more shifts every bit out (PostgreSQL takes the
-- count modulo 64).
CREATE OR REPLACE FUNCTION sqlite_shl(a bigint, b bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN b >= 64 THEN 0
              WHEN b >= 0 THEN a << b::integer
              WHEN b <= -64 THEN CASE WHEN a < 0 THEN -1 ELSE 0 END
              ELSE a >> (-b)::integer END
$$
;;
CREATE OR REPLACE FUNCTION sqlite_shr(a bigint, b bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT sqlite_shl(a, -b)'
;;
-- group_concat(DISTINCT x): the distinct values in the order first seen
-- (PostgreSQL's string_agg(DISTINCT …) sorts them); NULLs are skipped.
CREATE OR REPLACE FUNCTION sqlite_distinct_concat(vals text[]) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT string_agg(v, ',' ORDER BY i)
  FROM (SELECT v, min(i) AS i FROM unnest(vals) WITH ORDINALITY AS u(v, i) WHERE v IS NOT NULL GROUP BY v) d
$$
;;
-- -text (expr.rs): SQLite reads the text as a number first (-'5' is -5,
-- -'x' is 0); PostgreSQL has no prefix - on text.
CREATE OR REPLACE FUNCTION sqlite_negate(a text) RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT -sqlite_cast_numeric(a)'
;;
DO $$ BEGIN
  CREATE OPERATOR - (RIGHTARG = text, FUNCTION = sqlite_negate);
EXCEPTION WHEN duplicate_function THEN NULL;
END $$
;;
-- +x of a column (expr.rs): the value as it is, but an expression, not
-- the column (no declared type, as in SQLite). Inlined by the planner.
CREATE OR REPLACE FUNCTION sqlite_plus(a anyelement) RETURNS anyelement LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT a'
