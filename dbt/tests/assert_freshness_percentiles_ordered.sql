-- P50 <= P95 <= max in every hour, for both clocks, and the writes add up.
with

freshness as (

    select * from {{ ref('fct_index_freshness') }}

),

final as (

    select *
    from freshness
    where
        event_lag_p50_s > event_lag_p95_s
        or event_lag_p95_s > event_lag_max_s
        or recorded_lag_p50_s > recorded_lag_p95_s
        or recorded_lag_p95_s > recorded_lag_max_s
        or index_writes + delete_writes <> applied_writes

)

select * from final
