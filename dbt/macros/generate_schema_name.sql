{#- Custom schemas are used as named (staging, intermediate, marts, snapshots), in every target: the
    warehouse has one environment per target database, not one schema prefix per developer. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
