-- Index freshness per hour (of indexed_at, UTC) and generation: P50 / P95 / max of the lag from the
-- state's newest event to the applied write (the brief's measure: P95 under 5 minutes), and of the lag
-- from silver recording the version (the embed + index stage's share).
with

lags as (

    select * from {{ ref('int_index_writes__applied_lags') }}

),

hourly as (

    select
        date_trunc('hour', indexed_at) as hour_start,
        index_name,
        count(*) as applied_writes,
        count(case when action = 'index' then 1 end) as index_writes,
        count(case when action = 'delete' then 1 end) as delete_writes,
        count(distinct listing_id) as listings,
        {{ percentile_cont('event_lag_s', 0.5) }} as event_lag_p50_s,
        {{ percentile_cont('event_lag_s', 0.95) }} as event_lag_p95_s,
        max(event_lag_s) as event_lag_max_s,
        {{ percentile_cont('recorded_lag_s', 0.5) }} as recorded_lag_p50_s,
        {{ percentile_cont('recorded_lag_s', 0.95) }} as recorded_lag_p95_s,
        max(recorded_lag_s) as recorded_lag_max_s

    from lags
    group by date_trunc('hour', indexed_at), index_name

),

final as (

    select
        {{ surrogate_key(['hour_start', 'index_name']) }} as freshness_id,
        *

    from hourly

)

select * from final
