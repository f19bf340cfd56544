-- One row per listing state version and index generation it was written to: the first applied index
-- write (when the version became searchable there, and the models that embedded it), the first applied
-- delete, and how many writes were stale or rejected.
with

writes as (

    select * from {{ ref('stg_gold__index_writes') }}

),

applied_indexing as (

    select
        *,
        row_number() over (
            partition by listing_id, listing_version, index_name
            order by indexed_at, index_batch_id, index_write_id
        ) as nth_applied

    from writes
    where action = 'index' and outcome = 'applied'

),

first_indexing as (

    select * from applied_indexing
    where nth_applied = 1

),

per_generation as (

    select
        listing_id,
        listing_version,
        index_name,
        count(*) as writes,
        count(case when outcome = 'applied' then 1 end) as applied_writes,
        count(case when outcome = 'stale' then 1 end) as stale_writes,
        count(case when outcome = 'rejected' then 1 end) as rejected_writes,
        min(case when action = 'delete' and outcome = 'applied' then indexed_at end) as removed_at,
        max(
            case when outcome = 'applied' and target_alias = '{{ var("index_alias") }}' then 1 else 0 end
        ) = 1 as written_through_read_alias,
        min(event_ts) as event_ts

    from writes
    group by listing_id, listing_version, index_name

),

joined as (

    select
        per_generation.listing_id,
        per_generation.listing_version,
        per_generation.index_name,
        per_generation.event_ts,
        first_indexing.target_alias,
        first_indexing.text_model,
        first_indexing.image_model,
        first_indexing.text_hash,
        first_indexing.image_hash,
        first_indexing.indexed_at as searchable_at,
        per_generation.removed_at,
        per_generation.written_through_read_alias,
        per_generation.writes,
        per_generation.applied_writes,
        per_generation.stale_writes,
        per_generation.rejected_writes,
        case
            when first_indexing.indexed_at is not null then 'searchable'
            when per_generation.removed_at is not null then 'removed'
            when per_generation.stale_writes > 0 then 'stale'
            else 'rejected'
        end as index_outcome

    from per_generation
    left join first_indexing
        on
            per_generation.listing_id = first_indexing.listing_id
            and per_generation.listing_version = first_indexing.listing_version
            and per_generation.index_name = first_indexing.index_name

),

final as (

    select * from joined

)

select * from final
