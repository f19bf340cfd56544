-- Every applied index write with its two lags: from the state's newest event (event_ts, the brief's
-- freshness measure, which includes how late the event arrived) and from when silver first recorded the
-- version (the embed + index stage's own share). The same writes `vectorlake freshness` counts.
with

writes as (

    select * from {{ ref('stg_gold__index_writes') }}
    where outcome = 'applied'

),

versions as (

    select * from {{ ref('int_listing_versions__collapsed') }}

),

joined as (

    select
        writes.index_write_id,
        writes.listing_id,
        writes.listing_version,
        writes.index_name,
        writes.action,
        writes.event_ts,
        versions.first_recorded_at,
        writes.indexed_at,
        {{ seconds_between('writes.event_ts', 'writes.indexed_at') }} as event_lag_s,
        {{ seconds_between('versions.first_recorded_at', 'writes.indexed_at') }} as recorded_lag_s

    from writes
    left join versions
        on
            writes.listing_id = versions.listing_id
            and writes.listing_version = versions.listing_version

),

final as (

    select * from joined

)

select * from final
