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

;;
-- An INTEGER compared with a REAL (`n = 9007199254740992.0`, `int_col <
-- real_col`): SQLite compares them exactly; PostgreSQL has no bigint/float8
-- operators and converts the bigint to float8, so integers beyond 2^53 are
-- rounded first (9007199254740993 = 9007199254740992.0). Operators on
-- (bigint, double precision) and the reverse, exact matches that win over
-- the conversion, compare as SQLite's sqlite3IntFloatCompare: the REAL's
-- integral part (exact in a bigint when in range), then its fraction.
-- sqlite_int_real_cmp is STRICT (NULL in, NULL out); the operators'
-- functions are inlined into one call of it.
CREATE OR REPLACE FUNCTION sqlite_int_real_cmp(a bigint, b double precision) RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE
  WHEN b >= 9223372036854775808::double precision THEN -1
  WHEN b < -9223372036854775808::double precision THEN 1
  ELSE (SELECT CASE WHEN a < c THEN -1 WHEN a > c THEN 1
                    WHEN b > c::double precision THEN -1 WHEN b < c::double precision THEN 1
                    ELSE 0 END
        FROM (SELECT trunc(b)::bigint AS c) t)
END
$$
;;
-- One function and one operator per comparison and pair of types, made
-- by the loop below: INTEGER against REAL through sqlite_int_real_cmp
-- (STRICT, as it is). Those operators would also win for numeric against
-- bigint (numeric converts to double precision implicitly, PostgreSQL's
-- preferred numeric type), where the comparison is exact as numeric: the
-- numeric/bigint pairs keep it so (inlined: `a = b::numeric`, which an
-- index on a numeric column still serves), and numeric/integer and
-- numeric/smallint pairs, which the numeric/bigint ones would make
-- ambiguous with numeric/numeric. An operator that exists already is kept
-- (CREATE OPERATOR has no OR REPLACE); its function is replaced.
DO $$
DECLARE
  -- suffix, operator, commutator, negator, restriction and join estimators
  ops text[] := ARRAY[
    ['eq', '=',  '=',  '<>', 'eqsel',       'eqjoinsel'],
    ['ne', '<>', '<>', '=',  'neqsel',      'neqjoinsel'],
    ['lt', '<',  '>',  '>=', 'scalarltsel', 'scalarltjoinsel'],
    ['le', '<=', '>=', '>',  'scalarlesel', 'scalarlejoinsel'],
    ['gt', '>',  '<',  '<=', 'scalargtsel', 'scalargtjoinsel'],
    ['ge', '>=', '<=', '<',  'scalargesel', 'scalargejoinsel']];
  -- name, left type, right type, STRICT or not, body (%s: the operator)
  pairs text[] := ARRAY[
    ['int_real',  'bigint',           'double precision', 'STRICT', 'sqlite_int_real_cmp(a, b) %s 0'],
    ['real_int',  'double precision', 'bigint',           'STRICT', '0 %s sqlite_int_real_cmp(b, a)'],
    ['num_int',   'numeric',          'bigint',           '',       'a %s b::numeric'],
    ['int_num',   'bigint',           'numeric',          '',       'a::numeric %s b'],
    ['num_int4',  'numeric',          'integer',          '',       'a %s b::numeric'],
    ['int4_num',  'integer',          'numeric',          '',       'a::numeric %s b'],
    ['num_int2',  'numeric',          'smallint',         '',       'a %s b::numeric'],
    ['int2_num',  'smallint',         'numeric',          '',       'a::numeric %s b']];
  o text[];
  p text[];
BEGIN
  FOREACH p SLICE 1 IN ARRAY pairs LOOP
    FOREACH o SLICE 1 IN ARRAY ops LOOP
      EXECUTE format(
        'CREATE OR REPLACE FUNCTION sqlite_%s_%s(a %s, b %s) RETURNS boolean '
        'LANGUAGE sql IMMUTABLE %s PARALLEL SAFE AS %L',
        p[1], o[1], p[2], p[3], p[4], 'SELECT ' || format(p[5], o[2]));
      -- Looked up rather than caught: an EXCEPTION block is a
      -- subtransaction, and 48 of them in the bootstrap's transaction
      -- would overflow the backend's cache of 64 (issue 12). A shell
      -- operator (made as another's commutator or negator, no function
      -- yet) is completed by CREATE OPERATOR.
      IF NOT EXISTS (
        SELECT 1 FROM pg_operator
        WHERE oprname = o[2] AND oprleft = p[2]::regtype AND oprright = p[3]::regtype
          AND oprnamespace = current_schema()::regnamespace AND oprcode <> 0
      ) THEN
        EXECUTE format(
          'CREATE OPERATOR %s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = sqlite_%s_%s, '
          'COMMUTATOR = %s, NEGATOR = %s, RESTRICT = %s, JOIN = %s)',
          o[2], p[2], p[3], p[1], o[1], o[3], o[4], o[5], o[6]);
      END IF;
    END LOOP;
  END LOOP;
END $$
;;
-- sum() of integers (expr.rs, functions.rs): SQLite fails with "integer
-- overflow" past 64 bits; PostgreSQL's sum(bigint) is an exact numeric.
-- An integral numeric beyond bigint is that overflow (a REAL sum, or a
-- NUMERIC column's fractions, are SQLite's REAL, which does not overflow).
CREATE OR REPLACE FUNCTION sqlite_integer_overflow() RETURNS numeric LANGUAGE plpgsql VOLATILE AS
  $$BEGIN RAISE EXCEPTION 'integer overflow'; END$$
;;
CREATE OR REPLACE FUNCTION sqlite_sum_checked(s numeric) RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
  'SELECT CASE WHEN (s > 9223372036854775807 OR s < -9223372036854775808) AND s = trunc(s) THEN sqlite_integer_overflow() ELSE s END'
;;
CREATE OR REPLACE FUNCTION sqlite_sum_checked(s bigint) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT s'
;;
CREATE OR REPLACE FUNCTION sqlite_sum_checked(s double precision) RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT s'
