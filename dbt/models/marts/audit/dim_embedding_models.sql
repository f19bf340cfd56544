-- One row per encoder version (<registered model name>/<version>) the lake has seen: in the embedding
-- cache, in applied index writes, or as the model of an index generation.
with

embeddings as (

    select * from {{ ref('stg_gold__embeddings') }}

),

by_index as (

    select * from {{ ref('int_embedding_models__by_index') }}

),

embedding_stats as (

    select
        model_version,
        modality,
        max(dim) as dim,
        count(*) as embeddings,
        count(distinct listing_id) as embedded_listings,
        min(embedded_at) as first_embedded_at,
        max(embedded_at) as last_embedded_at

    from embeddings
    group by model_version, modality

),

index_stats as (

    select
        model_version,
        modality,
        -- a cast counts as a plain column to sqlfluff (ST06)
        cast(sum(applied_index_writes) as bigint) as applied_index_writes,
        max(dim) as dim,
        count(*) as generations,
        count(case when generation_state = 'live' then 1 end) as live_generations,
        min(first_indexed_at) as first_indexed_at,
        max(last_indexed_at) as last_indexed_at

    from by_index
    group by model_version, modality

),

spine as (

    select
        model_version,
        modality
    from embedding_stats

    union

    select
        model_version,
        modality
    from index_stats

),

final as (

    select
        spine.model_version,
        spine.modality,
        {{ regex_group('spine.model_version', '^(.*)/([^/]+)$', 1) }} as model_name,
        {{ regex_group('spine.model_version', '^(.*)/([^/]+)$', 2) }} as registry_version,
        coalesce(embedding_stats.dim, index_stats.dim) as dim,
        coalesce(embedding_stats.embeddings, 0) as embeddings,
        coalesce(embedding_stats.embedded_listings, 0) as embedded_listings,
        embedding_stats.first_embedded_at,
        embedding_stats.last_embedded_at,
        coalesce(index_stats.generations, 0) as generations,
        coalesce(index_stats.live_generations, 0) > 0 as is_in_live_generation,
        coalesce(index_stats.applied_index_writes, 0) as applied_index_writes,
        index_stats.first_indexed_at,
        index_stats.last_indexed_at

    from spine
    left join embedding_stats
        on
            spine.model_version = embedding_stats.model_version
            and spine.modality = embedding_stats.modality
    left join index_stats
        on
            spine.model_version = index_stats.model_version
            and spine.modality = index_stats.modality

)

select * from final
