-- The newest recorded state of each listing: what the SCD2 snapshot (snp_listing_states) records at each
-- build. Content columns (title, description, attributes) are left out: the snapshot keeps history, and
-- history is what an erasure has to find and remove.
with

states as (

    select * from {{ ref('stg_silver__listing_versions') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by listing_id
            order by recorded_at desc, listing_version desc, ingest_batch_id desc
        ) as newest_first

    from states

),

final as (

    select
        listing_id,
        listing_version,
        event_ts,
        is_live,
        is_served,
        seller_id,
        category_id,
        locale,
        policy_status,
        primary_image_id,
        state_hash,
        recorded_at

    from ranked
    where newest_first = 1

)

select * from final
