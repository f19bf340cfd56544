-- A version became searchable with vectors from the embedding cache: each searchable audit row finds its
-- text vector's cache entry (and its image vector's, when it has one), made no later than the write.
with

audit as (

    select * from {{ ref('fct_embedding_audit') }}

),

final as (

    select *
    from audit
    where
        index_outcome = 'searchable'
        and (
            text_model is null
            or text_embedded_at is null
            or text_embedded_at > searchable_at
            or (image_model is not null and (image_embedded_at is null or image_embedded_at > searchable_at))
        )

)

select * from final
