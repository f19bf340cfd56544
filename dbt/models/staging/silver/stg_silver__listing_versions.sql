with

source as (

    select * from {{ source('silver', 'listing_versions') }}

),

renamed as (

    select
        {{ surrogate_key(['listing_id', 'batch_id', 'recorded_at']) }} as listing_state_id,
        listing_id,
        version as listing_version,
        event_ts,
        live as is_live,
        served as is_served,
        seller_id,
        locale,
        category_id,
        category_path,
        primary_image_id,
        policy_status,
        state_hash,
        batch_id as ingest_batch_id,
        recorded_at

    from source

)

select * from renamed
