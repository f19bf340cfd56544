{#- The few expressions DuckDB (local) and Snowflake (prod) spell differently. -#}

{#- Seconds from start_ts to end_ts, with fractions. -#}
{% macro seconds_between(start_ts, end_ts) -%}
    {{ return(adapter.dispatch('seconds_between', 'vectorlake')(start_ts, end_ts)) }}
{%- endmacro %}

{% macro default__seconds_between(start_ts, end_ts) -%}
    (epoch({{ end_ts }}) - epoch({{ start_ts }}))
{%- endmacro %}

{% macro snowflake__seconds_between(start_ts, end_ts) -%}
    (datediff('microsecond', {{ start_ts }}, {{ end_ts }}) / 1000000.0)
{%- endmacro %}

{#- The continuous (interpolated) percentile of expr, p in [0, 1]: the same as Spark's percentile(),
    which `vectorlake freshness` uses. -#}
{% macro percentile_cont(expr, p) -%}
    {{ return(adapter.dispatch('percentile_cont', 'vectorlake')(expr, p)) }}
{%- endmacro %}

{% macro default__percentile_cont(expr, p) -%}
    quantile_cont({{ expr }}, {{ p }})
{%- endmacro %}

{% macro snowflake__percentile_cont(expr, p) -%}
    percentile_cont({{ p }}) within group (order by {{ expr }})
{%- endmacro %}

{#- Capture group `group` of the first match of regular expression `pattern` in expr, or null. -#}
{% macro regex_group(expr, pattern, group) -%}
    {{ return(adapter.dispatch('regex_group', 'vectorlake')(expr, pattern, group)) }}
{%- endmacro %}

{% macro default__regex_group(expr, pattern, group) -%}
    nullif(regexp_extract({{ expr }}, '{{ pattern }}', {{ group }}), '')
{%- endmacro %}

{% macro snowflake__regex_group(expr, pattern, group) -%}
    regexp_substr({{ expr }}, '{{ pattern }}', 1, 1, 'e', {{ group }})
{%- endmacro %}
