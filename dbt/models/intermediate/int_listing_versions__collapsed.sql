-- One row per listing state version (listing_id, listing_version), the grain the index knows. Every change
-- of a listing's state raises its version, except two events for one register in the same millisecond;
-- where recorded states share a version for that reason (or in lakes written before versions were sums),
-- the newest of them speaks for it.
with

states as (

    select * from {{ ref('stg_silver__listing_versions') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by listing_id, listing_version
            order by recorded_at desc, ingest_batch_id desc
        ) as newest_first

    from states

),

per_version as (

    select
        listing_id,
        listing_version,
        count(*) as states_at_version,
        min(recorded_at) as first_recorded_at,
        max(recorded_at) as last_recorded_at

    from states
    group by listing_id, listing_version

),

newest as (

    select * from ranked
    where newest_first = 1

),

joined as (

    select
        {{ surrogate_key(['per_version.listing_id', 'per_version.listing_version']) }} as listing_version_id,
        per_version.listing_id,
        per_version.listing_version,
        newest.event_ts,
        newest.is_live,
        newest.is_served,
        newest.seller_id,
        newest.category_id,
        newest.locale,
        newest.policy_status,
        newest.primary_image_id,
        newest.state_hash,
        per_version.states_at_version,
        per_version.first_recorded_at,
        per_version.last_recorded_at,
        lead(per_version.first_recorded_at) over (
            partition by per_version.listing_id
            order by per_version.listing_version
        ) as superseded_at

    from per_version
    inner join newest
        on
            per_version.listing_id = newest.listing_id
            and per_version.listing_version = newest.listing_version

),

final as (

    select * from joined

)

select * from final
