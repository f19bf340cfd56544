-- The index writer only ever writes a state silver recorded: every index write names a (listing,
-- version) that silver/listing_versions holds. Rows returned are writes of unknown versions.
with

writes as (

    select * from {{ ref('stg_gold__index_writes') }}

),

versions as (

    select * from {{ ref('int_listing_versions__collapsed') }}

),

final as (

    select writes.*
    from writes
    left join versions
        on
            writes.listing_id = versions.listing_id
            and writes.listing_version = versions.listing_version
    where versions.listing_version_id is null

)

select * from final
